//! Settings > Security log: what happened on this account — sign-ins, sign-outs, API key
//! changes — newest first, 50 to a page, with when, from where and with which browser.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    app::{components::icons::ShieldIcon, pages::sessions::go_to_login, server_fns::security_log},
    display::{describe_event, describe_user_agent, event_key_id, format_date_time, format_relative},
    wire::{AuditEventView, PageCursor, PortalError, SecurityLogView},
};

/// The user's security log.
#[component]
pub fn SecurityLogPage() -> impl IntoView {
    let query = use_query_map();
    let before = move || query.with(|q| q.get("before").and_then(|b| b.parse::<i64>().ok()));
    let log = Resource::new(before, security_log);

    view! {
        <Title text="Security log" />
        <div>
            <h1 class="text-2xl font-semibold tracking-tight text-slate-900">"Security log"</h1>
            <p class="mt-1 max-w-2xl text-sm text-slate-600">
                "Sign-ins, sign-outs and API key changes on your account, newest first, with the address and browser each came from. If you do not recognise something, sign out everywhere and revoke the keys involved."
            </p>
        </div>
        <Suspense fallback=|| view! { <div class="mt-6 rounded-xl border border-slate-200 bg-white p-6 text-sm text-slate-500 shadow-xs">"Loading the security log…"</div> }>
            {move || Suspend::new(async move {
                match log.await {
                    Ok(page) => view! { <LogPage page /> }.into_any(),
                    Err(PortalError::Unauthorized) => {
                        go_to_login();
                        view! { <p class="mt-6 text-sm text-slate-600">"You are signed out."</p> }.into_any()
                    }
                    Err(e) => view! { <p role="alert" class="mt-6 rounded-xl border border-red-200 bg-red-50 p-4 text-sm text-red-700">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LogPage(page: SecurityLogView) -> impl IntoView {
    if page.events.is_empty() && page.newer.is_none() {
        return view! {
            <div class="mt-6 flex flex-col items-center rounded-xl border border-dashed border-slate-300 bg-white px-6 py-14 text-center">
                <span class="flex h-11 w-11 items-center justify-center rounded-full bg-slate-100 text-slate-500"><ShieldIcon class="h-5 w-5" /></span>
                <h2 class="mt-4 text-base font-semibold text-slate-900">"Nothing here yet"</h2>
                <p class="mt-1 max-w-sm text-sm text-slate-600">"Sign-ins, sign-outs and changes to your API keys will be listed here as they happen."</p>
            </div>
        }
        .into_any();
    }
    let now_ms = page.now_ms;
    let newer_href = page.newer.map(|cursor| match cursor {
        PageCursor::First => "/settings/security-log".to_owned(),
        PageCursor::Before(id) => format!("/settings/security-log?before={id}"),
    });
    let older_href = page.older.map(|id| format!("/settings/security-log?before={id}"));
    let count = page.events.len();
    view! {
        <div class="mt-6 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs">
            <EventTable events=page.events now_ms caption="Security events, newest first" />
            <nav aria-label="Security log pages" class="flex items-center justify-between gap-3 border-t border-slate-200 bg-slate-50/60 px-4 py-3">
                <p class="text-xs text-slate-500">{if count == 1 { "1 event".to_owned() } else { format!("{count} events") }}" on this page"</p>
                <div class="flex gap-2">
                    <PageLink href=newer_href label="Newer" />
                    <PageLink href=older_href label="Older" />
                </div>
            </nav>
        </div>
    }
    .into_any()
}

#[component]
fn PageLink(href: Option<String>, label: &'static str) -> impl IntoView {
    let class =
        "inline-flex items-center rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium text-slate-700 shadow-xs";
    match href {
        Some(href) => view! { <A href=href attr:class=format!("{class} hover:bg-slate-50 focus-visible:outline-2 focus-visible:outline-sky-500")>{label}</A> }.into_any(),
        None => view! { <span aria-disabled="true" class=format!("{class} cursor-not-allowed opacity-50")>{label}</span> }.into_any(),
    }
}

/// A table of audit events (the security log's, or one key's), one [`EventRow`] each.
#[component]
pub fn EventTable(events: Vec<AuditEventView>, now_ms: i64, caption: &'static str) -> impl IntoView {
    view! {
        <table class="w-full table-fixed text-left text-sm">
            <caption class="sr-only">{caption}</caption>
            <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                <tr>
                    <th scope="col" class="w-32 px-4 py-3 sm:w-52">"When"</th>
                    <th scope="col" class="px-4 py-3">"Event"</th>
                    <th scope="col" class="hidden w-36 px-4 py-3 lg:table-cell">"IP address"</th>
                    <th scope="col" class="hidden w-44 px-4 py-3 lg:table-cell">"Browser"</th>
                </tr>
            </thead>
            <tbody class="divide-y divide-slate-100">
                {events.into_iter().map(|event| view! { <EventRow event now_ms /> }).collect_view()}
            </tbody>
        </table>
    }
}

/// One event: when (relative and absolute), what happened in words, from where.
#[component]
pub fn EventRow(event: AuditEventView, now_ms: i64) -> impl IntoView {
    let what = describe_event(&event.action, event.target.as_deref(), event.detail.as_ref());
    let browser = event.user_agent.as_deref().map(describe_user_agent);
    let ip = event.ip.clone();
    let what_view = match event_key_id(event.target.as_deref()) {
        Some(id) => view! { <A href=format!("/settings/api-keys/{id}") attr:class="font-medium text-slate-900 hover:text-sky-700 hover:underline">{what}</A> }.into_any(),
        None => view! { <span class="font-medium text-slate-900">{what}</span> }.into_any(),
    };
    view! {
        <tr class="align-top" data-action=event.action.clone()>
            <td class="px-4 py-3">
                <time class="block text-slate-900" datetime=chrono::DateTime::from_timestamp_millis(event.created_at).map(|t| t.to_rfc3339()).unwrap_or_default()>
                    {format_relative(event.created_at, now_ms)}
                </time>
                <span class="mt-0.5 block text-xs text-slate-500">{format_date_time(event.created_at)}</span>
            </td>
            <td class="break-words px-4 py-3">
                {what_view}
                // Below lg, where and with what go under the event.
                <p class="mt-0.5 text-xs text-slate-500 lg:hidden">
                    {[ip.clone(), browser.clone()].into_iter().flatten().collect::<Vec<_>>().join(" · ")}
                </p>
            </td>
            <td class="hidden truncate px-4 py-3 font-mono text-xs text-slate-600 lg:table-cell" title=ip.clone()>{ip.clone().unwrap_or_else(|| "—".into())}</td>
            <td class="hidden truncate px-4 py-3 text-slate-600 lg:table-cell" title=event.user_agent.clone()>{browser.unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}
