//! Settings > API Keys.

use leptos::prelude::*;
use leptos_meta::Title;

/// The user's API keys.
#[component]
pub fn ApiKeysPage() -> impl IntoView {
    view! {
        <Title text="API Keys" />
        <h1 class="text-2xl font-semibold tracking-tight">"API Keys"</h1>
    }
}
