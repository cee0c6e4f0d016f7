//! The portal UI (Leptos): rendered on the server, hydrated in the browser.

pub mod components;
pub mod pages;
pub mod server_fns;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{ParentRoute, Route, Router, Routes},
    path,
};

use crate::app::{
    components::layout::{AppHeader, SettingsLayout},
    pages::{
        admin::AdminPage, api_keys::ApiKeysPage, key_detail::KeyDetailPage, login::LoginPage, not_found::NotFound,
        security_log::SecurityLogPage, sessions::SessionsPage,
    },
};

/// The HTML document around the app (server side only renders it).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <meta name="referrer" content="strict-origin-when-cross-origin" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" id="leptos" href=format!("/{}/{}.css", options.site_pkg_dir, options.output_name) />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased">
                <App />
            </body>
        </html>
    }
}

/// The portal: header, then the routed page.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the document once hydration has happened,
    // which the end-to-end tests wait for before they click.
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Title formatter=|text: String| if text.is_empty() { "Workjet".to_owned() } else { format!("{text} · Workjet") } />
        <Router>
            <AppHeader />
            <main class="mx-auto w-full max-w-6xl px-4 pb-16 pt-6 sm:px-6 lg:px-8">
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/login") view=LoginPage />
                    <ParentRoute path=path!("/settings") view=SettingsLayout>
                        <Route path=path!("api-keys") view=ApiKeysPage />
                        // Async: the page waits for its data, so that another user's key id
                        // answers with the 404 status, not only the 404 text.
                        <Route path=path!("api-keys/:id") view=KeyDetailPage ssr=SsrMode::Async />
                        <Route path=path!("sessions") view=SessionsPage />
                        <Route path=path!("security-log") view=SecurityLogPage />
                    </ParentRoute>
                    <ParentRoute path=path!("/admin") view=SettingsLayout>
                        <Route path=path!("") view=AdminPage />
                    </ParentRoute>
                </Routes>
            </main>
        </Router>
    }
}
