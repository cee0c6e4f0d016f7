//! `/login`: the "Sign in with Google" page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    app::{
        components::icons::{GoogleMark, LogoMark},
        server_fns::sign_in_info,
    },
    urls::{encode_query_value, safe_return_path},
    wire::SignInErrorCode,
};

/// The sign-in page. Failures of the sign-in flow come back here as `?error=<code>`.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let info = Resource::new(|| (), |()| sign_in_info());
    let error = move || query.read().get("error").and_then(|code| SignInErrorCode::parse(&code)).map(SignInErrorCode::message);
    let href = move || match query.read().get("return_to").as_deref().and_then(safe_return_path) {
        Some(path) => format!("/auth/google?return_to={}", encode_query_value(path)),
        None => "/auth/google".to_owned(),
    };
    let (pending, set_pending) = signal(false);

    view! {
        <Title text="Sign in" />
        <section class="mx-auto mt-10 max-w-md sm:mt-20">
            <div class="rounded-2xl border border-slate-200 bg-white px-6 py-10 shadow-sm sm:px-10">
                <div class="flex flex-col items-center text-center">
                    <LogoMark class="h-12 w-12" />
                    <h1 class="mt-6 text-2xl font-semibold tracking-tight text-slate-900">"Sign in to Workjet"</h1>
                    <p class="mt-2 text-sm text-slate-600">"Create and manage the API keys your scripts, pipelines and apps use to call the Workjet API."</p>
                </div>
                {move || error().map(|message| view! {
                    <div role="alert" class="mt-6 rounded-lg border border-red-200 bg-red-50 px-4 py-3 text-sm text-red-800">{message}</div>
                })}
                // rel="external": a server route (the sign-in flow), not a client-side page.
                <a
                    href=href
                    rel="external"
                    role="button"
                    aria-busy=move || pending.get().to_string()
                    on:click=move |_| set_pending.set(true)
                    class="mt-8 flex w-full items-center justify-center gap-3 rounded-lg border border-slate-300 bg-white px-4 py-2.5 text-sm font-semibold text-slate-800 shadow-xs transition hover:bg-slate-50 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-500 aria-busy:cursor-wait aria-busy:opacity-70"
                >
                    <GoogleMark />
                    <span>{move || if pending.get() { "Redirecting to Google…" } else { "Sign in with Google" }}</span>
                </a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        info.await.ok().filter(|i| i.local_development).map(|_| view! {
                            <div class="mt-6 rounded-lg border border-amber-200 bg-amber-50 px-4 py-3 text-sm text-amber-900">
                                <p class="font-semibold">"Local development sign-in"</p>
                                <p class="mt-1">"No Google credentials are configured, so this server signs you in with its built-in local identity provider. Anyone who can reach it can sign in as anyone: use it only on your own machine."</p>
                            </div>
                        })
                    })}
                </Suspense>
                <p class="mt-8 text-center text-xs text-slate-500">"By signing in you agree to keep your API keys secret. Keys are shown once, when you create them."</p>
            </div>
        </section>
    }
}
