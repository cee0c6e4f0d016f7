//! The roll confirmation: what rolling does (a new key with the same name and settings,
//! shown once; the old key keeps working for a while, then stops), and how long the old key
//! keeps working: immediately, 1 hour, 24 hours (the default) or 7 days.

use leptos::prelude::*;

use crate::{
    app::{
        components::{
            dialog::Modal,
            key_format::{DEFAULT_GRACE, GRACE_CHOICES, old_key_fate},
        },
        server_fns::RollApiKey,
    },
    wire::ApiKeyView,
};

#[component]
pub fn RollKeyDialog(
    key: ApiKeyView,
    action: ServerAction<RollApiKey>,
    /// Told the chosen grace (seconds) as the roll is sent.
    on_grace: Callback<u64>,
    on_close: Callback<()>,
) -> impl IntoView {
    let id = key.id;
    let expires_at = key.expires_at;
    let grace = RwSignal::new(DEFAULT_GRACE);
    let pending = action.pending();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let error = move || action.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    view! {
        <Modal labelled_by="roll-key-title" described_by="roll-key-desc" on_close>
            <h2 id="roll-key-title" class="text-lg font-semibold text-slate-900">{format!("Roll \u{201C}{}\u{201D}?", key.name)}</h2>
            <div id="roll-key-desc" class="mt-2 space-y-2 text-sm text-slate-600">
                <p>
                    "Rolling creates a new key with the same name, permissions and limits, and shows it to you once. The old key ("
                    <span class="font-mono text-slate-800">{key.hint.clone()}</span>
                    ") keeps working for the time you choose, so you can put the new key in place without downtime; then it stops working."
                </p>
            </div>
            <fieldset class="mt-5">
                <legend class="text-sm font-medium text-slate-800">"Old key keeps working"</legend>
                <div class="mt-2 grid grid-cols-2 gap-2 sm:grid-cols-4">
                    {GRACE_CHOICES.into_iter().map(|(seconds, label)| view! {
                        <label class="flex cursor-pointer items-center justify-center gap-2 rounded-lg border border-slate-200 px-3 py-2 text-sm font-medium text-slate-800 has-[:checked]:border-slate-900 has-[:checked]:bg-slate-50 has-[:focus-visible]:ring-2 has-[:focus-visible]:ring-sky-500/40">
                            <input type="radio" name="roll-grace" value=seconds.to_string() class="sr-only"
                                prop:checked=move || grace.get() == seconds on:change=move |_| grace.set(seconds) />
                            {label}
                        </label>
                    }).collect_view()}
                </div>
                <p
                    class=move || if grace.get() == 0 { "mt-2 text-sm text-red-700" } else { "mt-2 text-sm text-slate-600" }
                    aria-live="polite"
                >
                    {move || old_key_fate(grace.get(), expires_at, now_ms)}
                </p>
            </fieldset>
            {move || error().map(|message| view! { <p role="alert" class="mt-3 rounded-lg border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">{message}</p> })}
            <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                <button type="button" autofocus on:click=move |_| on_close.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">
                    "Cancel"
                </button>
                <button
                    type="button"
                    disabled=move || pending.get()
                    aria-busy=move || pending.get().to_string()
                    on:click=move |_| {
                        if !pending.get_untracked() {
                            on_grace.run(grace.get_untracked());
                            action.dispatch(RollApiKey { id, expire_old_in_seconds: grace.get_untracked() });
                        }
                    }
                    class="rounded-lg bg-slate-900 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700 disabled:cursor-wait disabled:opacity-70"
                >
                    {move || if pending.get() { "Rolling…" } else { "Roll key" }}
                </button>
            </div>
        </Modal>
    }
}
