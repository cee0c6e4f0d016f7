//! Settings > Sessions.

use leptos::prelude::*;
use leptos_meta::Title;

/// The user's signed-in browsers.
#[component]
pub fn SessionsPage() -> impl IntoView {
    view! {
        <Title text="Sessions" />
        <h1 class="text-2xl font-semibold tracking-tight">"Sessions"</h1>
    }
}
