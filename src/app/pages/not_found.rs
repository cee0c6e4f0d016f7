//! The 404 page.

use leptos::prelude::*;
use leptos_meta::Title;

/// Shown for any path the portal does not know (with status 404).
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Page not found" />
        <section class="mx-auto mt-16 max-w-md text-center">
            <p class="text-sm font-semibold text-sky-600">"404"</p>
            <h1 class="mt-2 text-3xl font-semibold tracking-tight text-slate-900">"Page not found"</h1>
            <p class="mt-3 text-slate-600">"The page you asked for does not exist. It may have moved, or the link may be mistyped."</p>
            <a href="/" rel="external" class="mt-8 inline-flex items-center rounded-lg bg-slate-900 px-4 py-2.5 text-sm font-semibold text-white shadow-sm hover:bg-slate-700">
                "Back to the portal"
            </a>
        </section>
    }
}
