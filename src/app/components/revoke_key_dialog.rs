//! The revoke confirmation: names the key and says requests using it fail at once.

use leptos::prelude::*;

use crate::{
    app::{components::dialog::Modal, server_fns::RevokeApiKey},
    wire::ApiKeyView,
};

#[component]
pub fn RevokeKeyDialog(key: ApiKeyView, action: ServerAction<RevokeApiKey>, on_close: Callback<()>) -> impl IntoView {
    let id = key.id;
    let pending = action.pending();
    let error = move || action.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    view! {
        <Modal labelled_by="revoke-key-title" described_by="revoke-key-desc" on_close>
            <h2 id="revoke-key-title" class="text-lg font-semibold text-slate-900">{format!("Revoke \u{201C}{}\u{201D}?", key.name)}</h2>
            <p id="revoke-key-desc" class="mt-2 text-sm text-slate-600">
                "Requests using this key ("
                <span class="font-mono text-slate-800">{key.hint.clone()}</span>
                ") will fail immediately with 401 Unauthorized. Revoking cannot be undone."
            </p>
            {move || error().map(|message| view! { <p role="alert" class="mt-3 text-sm text-red-700">{message}</p> })}
            <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                <button type="button" autofocus on:click=move |_| on_close.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">
                    "Cancel"
                </button>
                <button
                    type="button"
                    disabled=move || pending.get()
                    on:click=move |_| {
                        if !pending.get_untracked() {
                            action.dispatch(RevokeApiKey { id });
                        }
                    }
                    class="rounded-lg bg-red-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-red-500 disabled:cursor-wait disabled:opacity-70"
                >
                    {move || if pending.get() { "Revoking…" } else { "Revoke key" }}
                </button>
            </div>
        </Modal>
    }
}
