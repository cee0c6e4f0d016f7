//! The list of API keys: name, hint, permissions, created, last used, usage, status, and a
//! Revoke button on each active key.

use leptos::prelude::*;

use crate::{
    display::{format_date, format_date_time},
    wire::ApiKeyView,
};

/// "1.2k", "3.4M": compact counts for the usage column.
pub fn compact_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1_000.0).replace(".0k", "k"),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0).replace(".0M", "M"),
    }
}

#[component]
fn StatusBadge(key: ApiKeyView, now_ms: i64) -> impl IntoView {
    if let Some(revoked) = key.revoked_at {
        view! {
            <span class="inline-flex items-center gap-1.5 rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-600 ring-1 ring-slate-200">
                {format!("Revoked {}", format_date(revoked))}
            </span>
        }
        .into_any()
    } else if key.expires_at.is_some_and(|e| e <= now_ms) {
        view! { <span class="inline-flex items-center rounded-full bg-amber-50 px-2 py-0.5 text-xs font-medium text-amber-800 ring-1 ring-amber-200">"Expired"</span> }.into_any()
    } else {
        view! {
            <span class="inline-flex items-center gap-1.5 rounded-full bg-emerald-50 px-2 py-0.5 text-xs font-medium text-emerald-700 ring-1 ring-emerald-200">
                <span class="h-1.5 w-1.5 rounded-full bg-emerald-500" aria-hidden="true"></span>
                "Active"
            </span>
        }
        .into_any()
    }
}

/// The table; `on_revoke` opens the confirmation for a key.
#[component]
pub fn KeyTable(keys: Vec<ApiKeyView>, now_ms: i64, on_revoke: Callback<ApiKeyView>) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm">
                <caption class="sr-only">"Your API keys"</caption>
                <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                    <tr>
                        <th scope="col" class="px-4 py-3">"Name"</th>
                        <th scope="col" class="hidden px-4 py-3 lg:table-cell">"Permissions"</th>
                        <th scope="col" class="hidden px-4 py-3 md:table-cell">"Created"</th>
                        <th scope="col" class="hidden px-4 py-3 md:table-cell">"Last used"</th>
                        <th scope="col" class="hidden px-4 py-3 xl:table-cell">"Last 24 h"</th>
                        <th scope="col" class="px-4 py-3">"Status"</th>
                        <th scope="col" class="px-4 py-3 text-right"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100">
                    {keys
                        .into_iter()
                        .map(|key| {
                            let active = key.is_active(now_ms);
                            let revoke_target = key.clone();
                            let name = key.name.clone();
                            view! {
                                <tr class="align-middle hover:bg-slate-50/60">
                                    <td class="max-w-64 px-4 py-3">
                                        <p class="truncate font-medium text-slate-900" title=name.clone()><a href=format!("/settings/api-keys/{}", key.id) class="hover:text-sky-700 hover:underline focus-visible:outline-2 focus-visible:outline-sky-500">{name.clone()}</a></p>
                                        <p class="mt-0.5 whitespace-nowrap font-mono text-xs text-slate-500">{key.hint.clone()}</p>
                                    </td>
                                    <td class="hidden px-4 py-3 lg:table-cell">
                                        <span class="rounded-md bg-slate-100 px-2 py-0.5 font-mono text-xs text-slate-700">{key.permissions.summary()}</span>
                                    </td>
                                    <td class="hidden whitespace-nowrap px-4 py-3 text-slate-600 md:table-cell">{format_date(key.created_at)}</td>
                                    <td class="hidden whitespace-nowrap px-4 py-3 text-slate-600 md:table-cell">
                                        {key.last_used_at.map(format_date_time).unwrap_or_else(|| "Never".to_owned())}
                                    </td>
                                    <td class="hidden whitespace-nowrap px-4 py-3 text-slate-600 xl:table-cell">
                                        {format!("{} req · {} tok", compact_count(key.requests_24h), compact_count(key.tokens_24h))}
                                    </td>
                                    <td class="whitespace-nowrap px-4 py-3"><StatusBadge key=key.clone() now_ms /></td>
                                    <td class="whitespace-nowrap px-4 py-3 text-right">
                                        {active.then(|| view! {
                                            <button
                                                type="button"
                                                aria-label=format!("Revoke {name}")
                                                on:click=move |_| on_revoke.run(revoke_target.clone())
                                                class="rounded-md px-2.5 py-1.5 text-sm font-medium text-red-700 hover:bg-red-50 focus-visible:outline-2 focus-visible:outline-red-500"
                                            >
                                                "Revoke"
                                            </button>
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

#[cfg(test)]
mod tests {
    use super::compact_count;

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(0), "0");
        assert_eq!(compact_count(999), "999");
        assert_eq!(compact_count(1000), "1k");
        assert_eq!(compact_count(1530), "1.5k");
        assert_eq!(compact_count(2_000_000), "2M");
    }
}
