//! Settings > API Keys > one key: its settings, where it was last used, its usage per hour
//! (a day) and per day (a month), and what was done to it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_params_map};

use crate::{
    app::{
        components::{
            key_format::compact_count,
            usage_chart::{Period, UsageChart},
        },
        pages::{security_log::EventTable, sessions::go_to_login},
        server_fns::api_key_detail,
    },
    display::{describe_user_agent, format_date, format_date_time, format_relative},
    wire::{ApiKeyView, KeyDetailView, PortalError},
};

/// The page of `/settings/api-keys/{id}`.
#[component]
pub fn KeyDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|id| id.parse::<i64>().ok()).filter(|id| *id > 0));
    let detail = Resource::new(id, |id| async move {
        match id {
            Some(id) => api_key_detail(id).await,
            None => Err(PortalError::NotFound("That API key does not exist.".into())),
        }
    });

    view! {
        <Title text="API key" />
        <A href="/settings/api-keys" attr:class="inline-flex items-center gap-1 text-sm font-medium text-slate-600 hover:text-slate-900">
            <span aria-hidden="true">"←"</span>
            "API Keys"
        </A>
        <Suspense fallback=|| view! { <p class="mt-6 text-sm text-slate-500">"Loading the key…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <KeyDetail detail /> }.into_any(),
                    Err(PortalError::Unauthorized) => {
                        go_to_login();
                        view! { <p class="mt-6 text-sm text-slate-600">"You are signed out."</p> }.into_any()
                    }
                    Err(PortalError::NotFound(message)) => {
                        #[cfg(feature = "ssr")]
                        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                            response.set_status(axum::http::StatusCode::NOT_FOUND);
                        }
                        view! {
                            <section class="mt-6 rounded-xl border border-dashed border-slate-300 bg-white px-6 py-14 text-center">
                                <h1 class="text-lg font-semibold text-slate-900">{message}</h1>
                                <p class="mt-1 text-sm text-slate-600">"Check the link, or open the key from your list of API keys."</p>
                                <A href="/settings/api-keys" attr:class="mt-6 inline-flex rounded-lg bg-slate-900 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700">"Back to API Keys"</A>
                            </section>
                        }.into_any()
                    }
                    Err(e) => view! { <p role="alert" class="mt-6 rounded-xl border border-red-200 bg-red-50 p-4 text-sm text-red-700">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// "Active", "Expired", "Revoked Nov 3, 2026", and "Replaced by …" for a rolled key.
#[component]
fn Status(key: ApiKeyView, replaced_by_name: Option<String>, now_ms: i64) -> impl IntoView {
    let badge = "inline-flex items-center gap-1.5 rounded-full px-2.5 py-0.5 text-xs font-medium ring-1";
    let state = if let Some(revoked) = key.revoked_at {
        view! { <span class=format!("{badge} bg-slate-100 text-slate-600 ring-slate-200")>{format!("Revoked {}", format_date(revoked))}</span> }.into_any()
    } else if key.expires_at.is_some_and(|e| e <= now_ms) {
        view! { <span class=format!("{badge} bg-amber-50 text-amber-800 ring-amber-200")>"Expired"</span> }.into_any()
    } else {
        view! {
            <span class=format!("{badge} bg-emerald-50 text-emerald-700 ring-emerald-200")>
                <span class="h-1.5 w-1.5 rounded-full bg-emerald-500" aria-hidden="true"></span>
                "Active"
            </span>
        }
        .into_any()
    };
    let replaced = key.replaced_by.map(|next| {
        let name = replaced_by_name.map(|n| format!("“{n}”")).unwrap_or_else(|| format!("key #{next}"));
        view! {
            <span class=format!("{badge} bg-sky-50 text-sky-800 ring-sky-200")>
                "Replaced by "
                <A href=format!("/settings/api-keys/{next}") attr:class="underline hover:text-sky-950">{name}</A>
            </span>
        }
    });
    view! { <span class="flex flex-wrap items-center gap-2">{state}{replaced}</span> }
}

/// One row of a description list.
#[component]
fn Field(label: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="grid grid-cols-1 gap-1 px-4 py-3 sm:grid-cols-3 sm:gap-4 sm:px-5">
            <dt class="text-sm font-medium text-slate-500">{label}</dt>
            <dd class="min-w-0 break-words text-sm text-slate-900 sm:col-span-2">{children()}</dd>
        </div>
    }
}

fn card_title(title: &'static str) -> impl IntoView {
    view! { <h2 class="border-b border-slate-200 px-4 py-3 text-sm font-semibold text-slate-900 sm:px-5">{title}</h2> }
}

#[component]
fn KeyDetail(detail: KeyDetailView) -> impl IntoView {
    let KeyDetailView { key, replaced_by_name, hourly, daily, events, now_ms } = detail;
    let muted = |text: &str| view! { <span class="text-slate-500">{text.to_owned()}</span> }.into_any();
    let permissions = key.permissions.summary();
    let expiry = match key.expires_at {
        None => muted("Never"),
        Some(e) if e <= now_ms => view! { <span>{format!("{} (expired)", format_date_time(e))}</span> }.into_any(),
        Some(e) => view! { <span>{format_date_time(e)}</span> }.into_any(),
    };
    let rate_limit = match key.rate_limit_per_minute {
        Some(n) => view! { <span>{format!("{n} requests a minute")}</span> }.into_any(),
        None => muted("The server's default"),
    };
    let models = match key.models.clone() {
        None => muted("All models"),
        Some(models) if models.is_empty() => muted("No models"),
        Some(models) => view! {
            <ul class="flex flex-wrap gap-1.5">
                {models.into_iter().map(|m| view! { <li class="rounded-md bg-slate-100 px-2 py-0.5 font-mono text-xs text-slate-700">{m}</li> }).collect_view()}
            </ul>
        }
        .into_any(),
    };
    let budget = match key.daily_token_limit {
        None => muted("No daily limit"),
        Some(limit) => {
            // Today's count from the key when it has one, else today's bucket of the chart.
            let today_start = now_ms - now_ms.rem_euclid(86_400_000);
            let used = key.tokens_today.unwrap_or_else(|| daily.iter().filter(|b| b.start >= today_start).map(|b| b.tokens).sum());
            let percent = used.saturating_mul(100).checked_div(limit).unwrap_or(100).min(100);
            let bar = if percent >= 90 { "#f59e0b" } else { "#0ea5e9" };
            view! {
                <div class="max-w-sm">
                    <p>{format!("{} / {} tokens today", compact_count(used), compact_count(limit))}</p>
                    // An SVG bar: the page's Content-Security-Policy allows no inline style.
                    <svg class="mt-1.5 h-1.5 w-full" viewBox="0 0 100 6" preserveAspectRatio="none" role="progressbar" aria-label="Daily token budget used" aria-valuemin="0" aria-valuemax=limit.to_string() aria-valuenow=used.min(limit).to_string()>
                        <rect width="100" height="6" rx="3" fill="#f1f5f9" />
                        <rect width=percent.to_string() height="6" rx="3" fill=bar />
                    </svg>
                    <p class="mt-1 text-xs text-slate-500">"Resets at midnight UTC."</p>
                </div>
            }
            .into_any()
        }
    };
    let last_used = match key.last_used_at {
        None => view! { <p class="px-4 py-4 text-sm text-slate-600 sm:px-5">"This key has not been used yet."</p> }.into_any(),
        Some(at) => {
            let agent = key.last_used_user_agent.clone();
            let ip = key.last_used_ip.clone().unwrap_or_else(|| "—".into());
            view! {
                <dl class="divide-y divide-slate-100">
                    <Field label="When">
                        {format_relative(at, now_ms)}
                        <span class="block text-xs text-slate-500">{format_date_time(at)}</span>
                    </Field>
                    <Field label="IP address">
                        <span class="font-mono text-xs">{ip}</span>
                    </Field>
                    <Field label="Client">
                        {match agent {
                            Some(ua) => view! {
                                <span>{describe_user_agent(&ua)}</span>
                                <span class="mt-0.5 block break-all font-mono text-xs text-slate-500">{ua}</span>
                            }.into_any(),
                            None => muted("—"),
                        }}
                    </Field>
                </dl>
            }
            .into_any()
        }
    };
    let title = key.name.clone();
    view! {
        <Title text=title />
        <div class="mt-3 flex flex-col gap-3 sm:flex-row sm:items-end sm:justify-between">
            <div class="min-w-0">
                <h1 class="break-words text-2xl font-semibold tracking-tight text-slate-900">{key.name.clone()}</h1>
                <p class="mt-1 font-mono text-sm text-slate-500">{key.hint.clone()}</p>
            </div>
            <Status key=key.clone() replaced_by_name now_ms />
        </div>
        <div class="mt-6 grid gap-6 lg:grid-cols-5">
            <section class="overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs lg:col-span-3" aria-labelledby="key-settings">
                <h2 id="key-settings" class="border-b border-slate-200 px-4 py-3 text-sm font-semibold text-slate-900 sm:px-5">"Settings"</h2>
                <dl class="divide-y divide-slate-100">
                    <Field label="Permissions"><span class="rounded-md bg-slate-100 px-2 py-0.5 font-mono text-xs text-slate-700">{permissions}</span></Field>
                    <Field label="Created">{format_date_time(key.created_at)}</Field>
                    <Field label="Expires">{expiry}</Field>
                    <Field label="Rate limit">{rate_limit}</Field>
                    <Field label="Models">{models}</Field>
                    <Field label="Daily token budget">{budget}</Field>
                </dl>
            </section>
            <section class="self-start overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs lg:col-span-2">
                {card_title("Last used")}
                {last_used}
            </section>
        </div>
        <h2 class="mt-8 text-base font-semibold text-slate-900">"Usage"</h2>
        <p class="mt-0.5 text-sm text-slate-600">"Requests made with this key and the tokens they used (prompt and completion), in UTC."</p>
        <div class="mt-3 grid grid-cols-1 gap-6">
            <UsageChart title="Last 24 hours, per hour" buckets=hourly period=Period::Hours />
            <UsageChart title="Last 30 days, per day" buckets=daily period=Period::Days />
        </div>
        <h2 class="mt-8 text-base font-semibold text-slate-900">"Activity"</h2>
        <div class="mt-3 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs">
            {if events.is_empty() {
                view! { <p class="px-4 py-4 text-sm text-slate-600 sm:px-5">"No changes to this key have been recorded."</p> }.into_any()
            } else {
                view! {
                    <EventTable events now_ms caption="Changes to this key, newest first" />
                }
                .into_any()
            }}
        </div>
    }
}
