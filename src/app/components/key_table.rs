//! The list of API keys: name, hint, permissions and guardrails, created, last used, usage,
//! status with the expiry ("Expires in 3 days", "replaced by …" after a roll), and Edit, Roll
//! and Revoke on each active key. Narrow screens keep the name, the status and the actions.

use leptos::prelude::*;

use crate::{
    app::components::key_format::{Tone, compact_count, expiry_text, guardrails},
    display::{format_date, format_date_time},
    wire::ApiKeyView,
};

#[component]
fn StatusBadge(key: ApiKeyView, now_ms: i64) -> impl IntoView {
    if let Some(revoked) = key.revoked_at {
        view! {
            <span class="inline-flex items-center gap-1.5 whitespace-nowrap rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-600 ring-1 ring-slate-200">
                {format!("Revoked {}", format_date(revoked))}
            </span>
        }
        .into_any()
    } else if let Some(expired) = key.expires_at.filter(|e| *e <= now_ms) {
        view! {
            <span class="inline-flex items-center whitespace-nowrap rounded-full bg-amber-50 px-2 py-0.5 text-xs font-medium text-amber-800 ring-1 ring-amber-200">
                {format!("Expired {}", format_date(expired))}
            </span>
        }
        .into_any()
    } else {
        view! {
            <span class="inline-flex items-center gap-1.5 whitespace-nowrap rounded-full bg-emerald-50 px-2 py-0.5 text-xs font-medium text-emerald-700 ring-1 ring-emerald-200">
                <span class="h-1.5 w-1.5 rounded-full bg-emerald-500" aria-hidden="true"></span>
                "Active"
            </span>
        }
        .into_any()
    }
}

/// Under an active key's status: when it expires and, after a roll, which key replaced it.
#[component]
fn ExpiryLine(key: ApiKeyView, now_ms: i64, replaced_by: Option<String>) -> impl IntoView {
    let expiry = expiry_text(key.expires_at, now_ms);
    let class = match expiry.tone {
        Tone::Soon => "mt-1 text-xs font-medium text-amber-700",
        Tone::Calm | Tone::Past => "mt-1 text-xs text-slate-500",
    };
    let title = key.expires_at.map(format_date_time);
    view! {
        <p class=class title=title>
            {expiry.text}
            {replaced_by.map(|by| view! {
                <span class="font-normal text-slate-500">" \u{2014} replaced by " <span class="whitespace-nowrap font-mono">{by}</span></span>
            })}
        </p>
    }
}

/// The table; the callbacks open the Edit dialog, the roll and the revoke confirmations.
#[component]
pub fn KeyTable(
    keys: Vec<ApiKeyView>,
    now_ms: i64,
    on_revoke: Callback<ApiKeyView>,
    on_edit: Callback<ApiKeyView>,
    on_roll: Callback<ApiKeyView>,
) -> impl IntoView {
    // A rolled key names the key that replaced it (normally in the same list) by its hint:
    // both keys have the same name.
    let hints: std::collections::HashMap<i64, String> = keys.iter().map(|k| (k.id, k.hint.clone())).collect();
    let action = "rounded-md px-2 py-1 text-sm font-medium focus-visible:outline-2";
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm">
                <caption class="sr-only">"Your API keys"</caption>
                <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                    <tr>
                        <th scope="col" class="px-4 py-3">"Name"</th>
                        <th scope="col" class="hidden px-4 py-3 lg:table-cell">"Access"</th>
                        <th scope="col" class="hidden px-4 py-3 2xl:table-cell">"Created"</th>
                        <th scope="col" class="hidden px-4 py-3 xl:table-cell">"Last used"</th>
                        <th scope="col" class="hidden px-4 py-3 2xl:table-cell">"Last 24 h"</th>
                        <th scope="col" class="hidden px-4 py-3 sm:table-cell">"Status"</th>
                        <th scope="col" class="px-4 py-3 text-right"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100">
                    {keys
                        .into_iter()
                        .map(|key| {
                            let active = key.is_active(now_ms);
                            let revoke_target = key.clone();
                            let edit_target = key.clone();
                            let roll_target = key.clone();
                            let name = key.name.clone();
                            let limits = guardrails(&key);
                            let replaced_by = key.replaced_by.map(|id| hints.get(&id).cloned().unwrap_or_else(|| "a newer key".to_owned()));
                            let can_roll = active && key.replaced_by.is_none();
                            view! {
                                <tr class="align-middle hover:bg-slate-50/60">
                                    <td class="max-w-64 px-4 py-3">
                                        <p class="truncate font-medium text-slate-900" title=name.clone()><a href=format!("/settings/api-keys/{}", key.id) class="hover:text-sky-700 hover:underline focus-visible:outline-2 focus-visible:outline-sky-500">{name.clone()}</a></p>
                                        <p class="mt-0.5 whitespace-nowrap font-mono text-xs text-slate-500">{key.hint.clone()}</p>
                                        // Phones have no Status column: the status shows here.
                                        <div class="mt-1.5 sm:hidden">
                                            <StatusBadge key=key.clone() now_ms />
                                            {active.then(|| view! { <ExpiryLine key=key.clone() now_ms replaced_by=replaced_by.clone() /> })}
                                        </div>
                                    </td>
                                    <td class="hidden min-w-40 px-4 py-3 lg:table-cell">
                                        <span class="whitespace-nowrap rounded-md bg-slate-100 px-2 py-0.5 font-mono text-xs text-slate-700">{key.permissions.summary()}</span>
                                        <p class="mt-1 text-xs text-slate-500">
                                            {if limits.is_empty() { "All models, no budget".to_owned() } else { limits.join(" \u{b7} ") }}
                                        </p>
                                    </td>
                                    <td class="hidden whitespace-nowrap px-4 py-3 text-slate-600 2xl:table-cell">{format_date(key.created_at)}</td>
                                    <td class="hidden min-w-32 px-4 py-3 text-slate-600 xl:table-cell">
                                        {key.last_used_at.map(format_date_time).unwrap_or_else(|| "Never".to_owned())}
                                    </td>
                                    <td class="hidden whitespace-nowrap px-4 py-3 text-slate-600 2xl:table-cell">
                                        {format!("{} req · {} tok", compact_count(key.requests_24h), compact_count(key.tokens_24h))}
                                    </td>
                                    <td class="hidden max-w-60 px-4 py-3 sm:table-cell">
                                        <StatusBadge key=key.clone() now_ms />
                                        {if active {
                                            view! { <ExpiryLine key=key.clone() now_ms replaced_by /> }.into_any()
                                        } else {
                                            replaced_by.map(|by| view! {
                                                <p class="mt-1 text-xs text-slate-500">"Replaced by " <span class="whitespace-nowrap font-mono">{by}</span></p>
                                            }).into_any()
                                        }}
                                    </td>
                                    <td class="px-3 py-3 text-right sm:px-4">
                                        {active.then(|| view! {
                                            <div class="flex flex-col items-end gap-0.5 sm:flex-row sm:justify-end sm:gap-1">
                                                <button
                                                    type="button"
                                                    aria-label=format!("Edit {name}")
                                                    on:click=move |_| on_edit.run(edit_target.clone())
                                                    class=format!("{action} text-slate-700 hover:bg-slate-100 focus-visible:outline-sky-500")
                                                >
                                                    "Edit"
                                                </button>
                                                {can_roll.then(|| view! {
                                                    <button
                                                        type="button"
                                                        aria-label=format!("Roll {name}")
                                                        on:click=move |_| on_roll.run(roll_target.clone())
                                                        class=format!("{action} text-slate-700 hover:bg-slate-100 focus-visible:outline-sky-500")
                                                    >
                                                        "Roll"
                                                    </button>
                                                })}
                                                <button
                                                    type="button"
                                                    aria-label=format!("Revoke {name}")
                                                    on:click=move |_| on_revoke.run(revoke_target.clone())
                                                    class=format!("{action} text-red-700 hover:bg-red-50 focus-visible:outline-red-500")
                                                >
                                                    "Revoke"
                                                </button>
                                            </div>
                                        })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
