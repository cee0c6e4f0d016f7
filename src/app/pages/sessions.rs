//! Settings > Sessions: the browsers signed in to this account, with "Sign out" for each
//! and "Sign out everywhere".

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    app::{
        components::dialog::Modal,
        server_fns::{RevokeSession, SignOutEverywhere, list_sessions},
    },
    display::{describe_user_agent, format_date, format_date_time},
    wire::{PortalError, SessionView},
};

/// Sends the browser to the sign-in page (after the session ended).
pub fn go_to_login() {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href("/login");
    }
}

/// The user's signed-in browsers.
#[component]
pub fn SessionsPage() -> impl IntoView {
    let revoke = ServerAction::<RevokeSession>::new();
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    let sessions = Resource::new(move || revoke.version().get(), |_| list_sessions());
    let (confirm_everywhere, set_confirm_everywhere) = signal(false);

    Effect::new(move |_| {
        if matches!(everywhere.value().get(), Some(Ok(_))) {
            go_to_login();
        }
        if matches!(revoke.value().get(), Some(Err(PortalError::Unauthorized))) {
            go_to_login();
        }
    });

    view! {
        <Title text="Sessions" />
        <div class="flex flex-col gap-4 sm:flex-row sm:items-end sm:justify-between">
            <div>
                <h1 class="text-2xl font-semibold tracking-tight text-slate-900">"Sessions"</h1>
                <p class="mt-1 max-w-2xl text-sm text-slate-600">
                    "Browsers signed in to your Workjet account. Signing a session out ends it at once, on every Workjet server."
                </p>
            </div>
            <button
                type="button"
                on:click=move |_| set_confirm_everywhere.set(true)
                class="inline-flex shrink-0 items-center justify-center whitespace-nowrap rounded-lg border border-red-200 bg-white px-4 py-2 text-sm font-semibold text-red-700 shadow-xs hover:bg-red-50 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-red-500"
            >
                "Sign out everywhere"
            </button>
        </div>
        <div class="mt-6 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs">
            <Suspense fallback=|| view! { <p class="p-6 text-sm text-slate-500">"Loading sessions…"</p> }>
                {move || Suspend::new(async move {
                    match sessions.await {
                        Ok(list) => view! { <SessionTable sessions=list revoke /> }.into_any(),
                        Err(PortalError::Unauthorized) => {
                            go_to_login();
                            view! { <p class="p-6 text-sm text-slate-600">"You are signed out."</p> }.into_any()
                        }
                        Err(e) => view! { <p role="alert" class="p-6 text-sm text-red-700">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
        <Show when=move || confirm_everywhere.get()>
            <Modal labelled_by="sign-out-everywhere-title" described_by="sign-out-everywhere-desc" on_close=Callback::new(move |()| set_confirm_everywhere.set(false))>
                <h2 id="sign-out-everywhere-title" class="text-lg font-semibold text-slate-900">"Sign out everywhere?"</h2>
                <p id="sign-out-everywhere-desc" class="mt-2 text-sm text-slate-600">
                    "Every browser signed in to your account, including this one, will be signed out immediately. Your API keys keep working."
                </p>
                {move || everywhere.value().get().and_then(|r| r.err()).map(|e| view! { <p role="alert" class="mt-3 text-sm text-red-700">{e.to_string()}</p> })}
                <div class="mt-6 flex justify-end gap-3">
                    <button type="button" on:click=move |_| set_confirm_everywhere.set(false) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">
                        "Cancel"
                    </button>
                    <button
                        type="button"
                        disabled=move || everywhere.pending().get()
                        on:click=move |_| {
                            everywhere.dispatch(SignOutEverywhere {});
                        }
                        class="rounded-lg bg-red-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-red-500 disabled:opacity-60"
                    >
                        {move || if everywhere.pending().get() { "Signing out…" } else { "Sign out everywhere" }}
                    </button>
                </div>
            </Modal>
        </Show>
    }
}

#[component]
fn SessionTable(sessions: Vec<SessionView>, revoke: ServerAction<RevokeSession>) -> impl IntoView {
    if sessions.is_empty() {
        return view! { <p class="p-6 text-sm text-slate-600">"No active sessions."</p> }.into_any();
    }
    view! {
        <table class="w-full text-left text-sm">
            <caption class="sr-only">"Signed-in browsers"</caption>
            <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                <tr>
                    <th scope="col" class="px-4 py-3">"Device"</th>
                    <th scope="col" class="hidden px-4 py-3 md:table-cell">"IP address"</th>
                    <th scope="col" class="hidden px-4 py-3 sm:table-cell">"Signed in"</th>
                    <th scope="col" class="px-4 py-3">"Last active"</th>
                    <th scope="col" class="px-4 py-3 text-right"><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody class="divide-y divide-slate-100">
                {sessions
                    .into_iter()
                    .map(|s| {
                        let device = describe_user_agent(s.user_agent.as_deref().unwrap_or_default());
                        let id = s.id;
                        view! {
                            <tr>
                                <td class="px-4 py-3">
                                    <div class="flex flex-wrap items-center gap-2">
                                        <span class="font-medium text-slate-900">{device.clone()}</span>
                                        {s.current.then(|| view! { <span class="rounded-full bg-emerald-50 px-2 py-0.5 text-xs font-medium text-emerald-700 ring-1 ring-emerald-200">"This browser"</span> })}
                                    </div>
                                </td>
                                <td class="hidden px-4 py-3 font-mono text-xs text-slate-600 md:table-cell">{s.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                <td class="hidden px-4 py-3 text-slate-600 sm:table-cell">{format_date(s.created_at)}</td>
                                <td class="px-4 py-3 text-slate-600" title=format_date_time(s.last_seen_at)>{format_date_time(s.last_seen_at)}</td>
                                <td class="px-4 py-3 text-right">
                                    {if s.current {
                                        view! {
                                            <form method="post" action="/auth/logout">
                                                <button type="submit" class="rounded-md px-2.5 py-1.5 text-sm font-medium text-slate-700 hover:bg-slate-100">"Sign out"</button>
                                            </form>
                                        }.into_any()
                                    } else {
                                        view! {
                                            <button
                                                type="button"
                                                aria-label=format!("Sign out {device}")
                                                on:click=move |_| {
                                                    revoke.dispatch(RevokeSession { id });
                                                }
                                                class="rounded-md px-2.5 py-1.5 text-sm font-medium text-red-700 hover:bg-red-50"
                                            >
                                                "Sign out"
                                            </button>
                                        }.into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
