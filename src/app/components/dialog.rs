//! An accessible modal dialog on the native `<dialog>` element: `role="dialog"` with an
//! accessible name, focus moved in (and back out on close), Escape and backdrop clicks
//! routed to `on_close` so a caller can ask for confirmation first. The dialog and its
//! content exist in the DOM only while it is open.

use leptos::{html, prelude::*};

/// A modal dialog; render it only while it should be open (for example inside `<Show>`).
#[component]
pub fn Modal(
    /// Id of the element that names the dialog (its heading).
    labelled_by: &'static str,
    /// Id of the element that describes the dialog, if any.
    #[prop(optional)]
    described_by: Option<&'static str>,
    /// Escape or a click on the backdrop.
    on_close: Callback<()>,
    #[prop(default = "max-w-lg")] width: &'static str,
    children: Children,
) -> impl IntoView {
    let dialog_ref: NodeRef<html::Dialog> = NodeRef::new();

    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let previous_focus = StoredValue::new_local(document().active_element().and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()));
        Effect::new(move |_| {
            if let Some(dialog) = dialog_ref.get()
                && !dialog.open()
            {
                let _ = dialog.show_modal();
            }
        });
        on_cleanup(move || {
            if let Some(element) = previous_focus.try_get_value().flatten() {
                let _ = element.focus();
            }
        });
    }

    view! {
        <dialog
            node_ref=dialog_ref
            aria-labelledby=labelled_by
            aria-describedby=described_by
            aria-modal="true"
            class=format!("m-auto w-[calc(100%-2rem)] {width} rounded-2xl border border-slate-200 bg-white p-0 text-slate-900 shadow-2xl")
            on:cancel=move |ev: leptos::ev::Event| {
                // Escape: let the caller decide (it may ask for confirmation).
                ev.prevent_default();
                on_close.run(());
            }
            on:click=move |ev| {
                // A click on the dialog element itself (not its content) is on the backdrop.
                let on_backdrop = dialog_ref.get_untracked().is_some_and(|dialog| {
                    let target: Option<leptos::web_sys::EventTarget> = ev.target();
                    let dialog: &leptos::web_sys::EventTarget = dialog.as_ref();
                    target.as_ref() == Some(dialog)
                });
                if on_backdrop {
                    on_close.run(());
                }
            }
        >
            <div class="p-6 sm:p-7">{children()}</div>
        </dialog>
    }
}
