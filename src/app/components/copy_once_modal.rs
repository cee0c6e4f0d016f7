//! The copy-once modal: the new key in full, a Copy button, and a plain warning that it
//! will not be shown again. Closing before copying asks for confirmation. When it closes,
//! the key leaves the DOM and the page's memory. After a roll it is titled as the rolled key
//! and says what happens to the old one.

use leptos::{html, prelude::*};

use crate::{app::components::dialog::Modal, wire::CreatedApiKey};

#[component]
pub fn CopyOnceModal(
    created: CreatedApiKey,
    on_done: Callback<()>,
    /// After a roll: what happens to the old key ("The old key keeps working until …").
    #[prop(optional)]
    old_key: Option<String>,
) -> impl IntoView {
    let secret = StoredValue::new(created.secret);
    let key_name = created.key.name;
    let rolled = created.replaces.is_some();
    let title = if rolled { "Save your rolled API key" } else { "Save your API key" };
    let description = if rolled {
        format!(
            "\u{201C}{key_name}\u{201D} was rolled: this is its new key, and the only time it is shown. Copy it now and put it where the old key is used."
        )
    } else {
        format!("\u{201C}{key_name}\u{201D} is ready. This is the only time the key is shown: copy it now.")
    };
    let (copied, set_copied) = signal(false);
    let (confirming, set_confirming) = signal(false);
    let (status, set_status) = signal(None::<&'static str>);
    let input_ref: NodeRef<html::Input> = NodeRef::new();

    let select_key = move || {
        if let Some(input) = input_ref.get_untracked() {
            input.select();
        }
    };
    let request_close = move || {
        if copied.get_untracked() {
            on_done.run(());
        } else if confirming.get_untracked() {
            // Escape while asked: back to the key, the safe choice.
            set_confirming.set(false);
        } else {
            set_confirming.set(true);
        }
    };
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let text = secret.get_value();
            leptos::task::spawn_local(async move {
                let clipboard = window().navigator().clipboard();
                match wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&text)).await {
                    Ok(_) => {
                        set_copied.set(true);
                        set_status.set(Some("Copied to clipboard."));
                    }
                    Err(_) => {
                        select_key();
                        set_status.set(Some("The browser blocked copying. The key is selected: press Ctrl+C (⌘C on a Mac)."));
                    }
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (set_copied, set_status, select_key);
        }
    };

    view! {
        <Modal labelled_by="copy-once-title" described_by="copy-once-desc" on_close=Callback::new(move |()| request_close()) width="max-w-xl">
            <Show
                when=move || !confirming.get()
                fallback=move || view! {
                    <h2 id="copy-once-title" class="text-lg font-semibold text-slate-900">"You won't see this key again"</h2>
                    <p id="copy-once-desc" class="mt-2 text-sm text-slate-600">
                        "You have not copied the key. Once this window closes the key cannot be shown again: you would have to create a new one."
                    </p>
                    <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                        <button type="button" on:click=move |_| on_done.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">
                            "Close without copying"
                        </button>
                        <button type="button" autofocus on:click=move |_| set_confirming.set(false) class="rounded-lg bg-slate-900 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700">
                            "Go back to the key"
                        </button>
                    </div>
                }
            >
                <div class="flex items-start gap-3">
                    <span class="mt-0.5 flex h-9 w-9 shrink-0 items-center justify-center rounded-full bg-emerald-100 text-emerald-700" aria-hidden="true">
                        <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor"><path fill-rule="evenodd" d="M16.7 5.3a1 1 0 0 1 0 1.4l-8 8a1 1 0 0 1-1.4 0l-4-4a1 1 0 1 1 1.4-1.4L8 12.6l7.3-7.3a1 1 0 0 1 1.4 0Z" clip-rule="evenodd" /></svg>
                    </span>
                    <div>
                        <h2 id="copy-once-title" class="text-lg font-semibold text-slate-900">{title}</h2>
                        <p id="copy-once-desc" class="mt-1 text-sm text-slate-600">{description.clone()}</p>
                        {old_key.clone().map(|text| view! { <p class="mt-1 text-sm font-medium text-slate-700">{text}</p> })}
                    </div>
                </div>
                <div class="mt-5 flex gap-2">
                    <input
                        node_ref=input_ref
                        type="text"
                        readonly
                        aria-label="API key"
                        prop:value=move || secret.get_value()
                        on:focus=move |_| select_key()
                        spellcheck="false"
                        autocomplete="off"
                        class="block w-full min-w-0 rounded-lg border border-slate-300 bg-slate-50 px-3 py-2 font-mono text-sm text-slate-900 focus:border-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-500/30"
                    />
                    <button
                        type="button"
                        on:click=copy
                        class="inline-flex shrink-0 items-center gap-1.5 rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm font-semibold text-slate-800 shadow-xs hover:bg-slate-50"
                    >
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                </div>
                <p class="mt-2 min-h-5 text-sm text-emerald-700" role="status" aria-live="polite">{move || status.get()}</p>
                <div class="mt-3 rounded-lg border border-amber-200 bg-amber-50 px-4 py-3 text-sm text-amber-900">
                    <p class="font-semibold">"It will not be shown again."</p>
                    <p class="mt-1">"Workjet stores only a SHA-256 hash of the key, so nobody can recover it. Keep it in a password manager or a secrets vault, never in source code. If you lose it, revoke it and create a new one."</p>
                </div>
                <div class="mt-6 flex justify-end">
                    <button type="button" on:click=move |_| request_close() class="rounded-lg bg-slate-900 px-5 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700">
                        "Done"
                    </button>
                </div>
            </Show>
        </Modal>
    }
}
