//! Settings > API Keys: the list (filtered by state — All, Active, Expired, Revoked, with
//! counts — searched by name, 50 a page; the query is kept in the URL), "Create API Key"
//! (then the copy-once modal), and on each active key Edit, Roll (then the copy-once modal
//! with the new key) and Revoke, each with its dialog. Rendered completely on the server;
//! after hydration it all works without a reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    NavigateOptions,
    hooks::{use_navigate, use_query_map},
};

use crate::{
    app::{
        components::{
            copy_once_modal::CopyOnceModal,
            create_key_dialog::CreateKeyDialog,
            edit_key_dialog::EditKeyDialog,
            icons::KeyIcon,
            key_format::{last_page, old_key_fate, page_range},
            key_table::KeyTable,
            revoke_key_dialog::RevokeKeyDialog,
            roll_key_dialog::RollKeyDialog,
        },
        pages::sessions::go_to_login,
        server_fns::{CreateApiKey, EditApiKey, RevokeApiKey, RollApiKey, list_api_key_page, quick_start},
    },
    wire::{ApiKeyView, KeyListPage, KeyListQuery, PortalError, QuickStartView},
};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The state filter of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    All,
    Active,
    Expired,
    Revoked,
}

impl Filter {
    const ALL: [Filter; 4] = [Filter::All, Filter::Active, Filter::Expired, Filter::Revoked];

    fn parse(text: &str) -> Self {
        Self::ALL.into_iter().find(|f| f.param() == Some(text)).unwrap_or(Filter::All)
    }

    /// The `status` of the query (and of the URL); `None` for all.
    fn param(self) -> Option<&'static str> {
        match self {
            Filter::All => None,
            Filter::Active => Some("active"),
            Filter::Expired => Some("expired"),
            Filter::Revoked => Some("revoked"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Active => "Active",
            Filter::Expired => "Expired",
            Filter::Revoked => "Revoked",
        }
    }

    fn count(self, page: &KeyListPage) -> u64 {
        match self {
            Filter::All => page.active + page.expired + page.revoked,
            Filter::Active => page.active,
            Filter::Expired => page.expired,
            Filter::Revoked => page.revoked,
        }
    }
}

/// The page's URL query for a filter, search and page ("?status=active&q=ci&page=2").
fn list_url(filter: Filter, search: &str, page: u32) -> String {
    let mut parts = Vec::new();
    if let Some(status) = filter.param() {
        parts.push(format!("status={status}"));
    }
    let search = search.trim();
    if !search.is_empty() {
        let encoded: String = search
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        parts.push(format!("q={encoded}"));
    }
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() { "/settings/api-keys".to_owned() } else { format!("/settings/api-keys?{}", parts.join("&")) }
}

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let edit = ServerAction::<EditApiKey>::new();
    let roll = ServerAction::<RollApiKey>::new();

    // The list's query starts from the URL and is kept there.
    let url_query = use_query_map();
    let (filter, set_filter) = signal(url_query.with_untracked(|q| Filter::parse(&q.get("status").unwrap_or_default())));
    let initial_search = url_query.with_untracked(|q| q.get("q").unwrap_or_default());
    let (search, set_search) = signal(initial_search.clone());
    let search_text = RwSignal::new(initial_search);
    let (page, set_page) = signal(url_query.with_untracked(|q| q.get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(1).max(1)));
    let navigate = use_navigate();
    let sync_url = move || {
        let url = list_url(filter.get_untracked(), &search.get_untracked(), page.get_untracked());
        navigate(&url, NavigateOptions { replace: true, scroll: false, ..Default::default() });
    };
    let sync_url = StoredValue::new(sync_url);
    let choose_filter = move |f: Filter| {
        set_filter.set(f);
        set_page.set(1);
        sync_url.with_value(|sync| sync());
    };
    let apply_search = move |text: String| {
        if text.trim() != search.get_untracked().trim() {
            set_search.set(text);
            set_page.set(1);
            sync_url.with_value(|sync| sync());
        }
    };
    let go_to_page = move |p: u32| {
        set_page.set(p.max(1));
        sync_url.with_value(|sync| sync());
    };
    // Typing searches after a pause; Enter searches at once.
    let typed = StoredValue::new(0u64);
    let on_search_input = move |text: String| {
        search_text.set(text.clone());
        typed.update_value(|n| *n += 1);
        let mine = typed.get_value();
        set_timeout(
            move || {
                if typed.try_get_value() == Some(mine) {
                    apply_search(text);
                }
            },
            std::time::Duration::from_millis(300),
        );
    };

    let keys = Resource::new(
        move || {
            (
                filter.get(),
                search.get(),
                page.get(),
                create.version().get(),
                revoke.version().get(),
                edit.version().get(),
                roll.version().get(),
            )
        },
        |(filter, search, page, ..)| list_api_key_page(KeyListQuery { status: filter.param().map(str::to_owned), search, page }),
    );
    let settings = Resource::new(|| (), |()| quick_start());
    let (create_open, set_create_open) = signal(false);
    let (revoke_target, set_revoke_target) = signal(None::<ApiKeyView>);
    let (edit_target, set_edit_target) = signal(None::<ApiKeyView>);
    let (roll_target, set_roll_target) = signal(None::<ApiKeyView>);
    // What the copy-once modal of a roll says about the old key.
    let (roll_note, set_roll_note) = signal(None::<String>);

    let open_create = move || {
        create.value().set(None);
        set_create_open.set(true);
    };
    // A created key closes the create dialog; the copy-once modal takes over. The list shows
    // it: the first page, of all keys if the filter would hide it.
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            set_create_open.set(false);
            if matches!(filter.get_untracked(), Filter::Expired | Filter::Revoked) {
                set_filter.set(Filter::All);
            }
            set_page.set(1);
            sync_url.with_value(|sync| sync());
        }
    });
    // A revoked key closes its confirmation.
    Effect::new(move |_| {
        if let Some(Ok(done)) = revoke.value().get()
            && revoke_target.get_untracked().is_some_and(|k| k.id == done.id)
        {
            set_revoke_target.set(None);
        }
    });
    // A saved edit closes its dialog.
    Effect::new(move |_| {
        if let Some(Ok(done)) = edit.value().get()
            && edit_target.get_untracked().is_some_and(|k| k.id == done.id)
        {
            set_edit_target.set(None);
        }
    });
    // A rolled key closes its confirmation; the copy-once modal shows the new key.
    Effect::new(move |_| match roll.value().get() {
        Some(Ok(done)) if roll_target.get_untracked().is_some_and(|k| Some(k.id) == done.replaces) => set_roll_target.set(None),
        Some(Err(PortalError::Unauthorized)) => go_to_login(),
        _ => {}
    });
    Effect::new(move |_| {
        if matches!(revoke.value().get(), Some(Err(PortalError::Unauthorized))) {
            go_to_login();
        }
    });
    let created = move || create.value().get().and_then(Result::ok);
    let rolled = move || roll.value().get().and_then(Result::ok);

    let table_callbacks = move || {
        (
            Callback::new(move |key| {
                revoke.value().set(None);
                set_revoke_target.set(Some(key));
            }),
            Callback::new(move |key| {
                edit.value().set(None);
                set_edit_target.set(Some(key));
            }),
            Callback::new(move |key| {
                roll.value().set(None);
                set_roll_target.set(Some(key));
            }),
        )
    };

    view! {
        <Title text="API Keys" />
        <div class="flex flex-col gap-4 sm:flex-row sm:items-end sm:justify-between">
            <div>
                <h1 class="text-2xl font-semibold tracking-tight text-slate-900">"API Keys"</h1>
                <p class="mt-1 max-w-2xl text-sm text-slate-600">
                    "Keys let scripts, CI/CD pipelines and the desktop app call the Workjet API. A key is shown once, when you create it; Workjet keeps only its SHA-256 hash."
                </p>
            </div>
            <button
                type="button"
                on:click=move |_| open_create()
                class="inline-flex shrink-0 items-center justify-center gap-2 whitespace-nowrap rounded-lg bg-slate-900 px-4 py-2.5 text-sm font-semibold text-white shadow-sm hover:bg-slate-700 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-500"
            >
                <span aria-hidden="true" class="text-base leading-none">"+"</span>
                "Create API Key"
            </button>
        </div>

        <div class="mt-6 flex flex-col gap-3 sm:flex-row sm:items-center sm:justify-between">
            <div role="group" aria-label="Show keys" class="flex w-full overflow-x-auto rounded-lg bg-slate-100 p-1 sm:inline-flex sm:w-auto">
                {Filter::ALL.into_iter().map(|f| view! {
                    <button
                        type="button"
                        aria-pressed=move || (filter.get() == f).to_string()
                        on:click=move |_| choose_filter(f)
                        class="inline-flex flex-1 items-center justify-center gap-1 whitespace-nowrap rounded-md px-2 py-1.5 text-sm font-medium text-slate-600 hover:text-slate-900 focus-visible:outline-2 focus-visible:outline-sky-500 aria-pressed:bg-white aria-pressed:text-slate-900 aria-pressed:shadow-sm sm:flex-none sm:px-3"
                    >
                        {f.label()}
                        " "
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                keys.await.ok().map(|list| view! {
                                    <span class="rounded-full bg-slate-200/70 px-1.5 text-xs tabular-nums text-slate-600">{f.count(&list)}</span>
                                })
                            })}
                        </Transition>
                    </button>
                }).collect_view()}
            </div>
            <form role="search" class="relative w-full sm:w-64" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                typed.update_value(|n| *n += 1);
                apply_search(search_text.get_untracked());
            }>
                <svg class="pointer-events-none absolute left-3 top-1/2 h-4 w-4 -translate-y-1/2 text-slate-400" viewBox="0 0 20 20" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
                    <circle cx="9" cy="9" r="5.5" /><path d="m13.5 13.5 3.5 3.5" stroke-linecap="round" />
                </svg>
                <input
                    type="search"
                    aria-label="Search keys"
                    placeholder="Search by name"
                    autocomplete="off"
                    prop:value=move || search_text.get()
                    on:input=move |ev| on_search_input(event_target_value(&ev))
                    class="block w-full rounded-lg border border-slate-300 bg-white py-2 pl-9 pr-3 text-sm shadow-xs focus:border-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-500/30"
                />
            </form>
        </div>

        <section aria-label="API keys" class="mt-3 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs">
            <Transition fallback=|| view! { <p class="p-6 text-sm text-slate-500">"Loading keys…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if Filter::All.count(&list) == 0 => view! { <EmptyState on_create=Callback::new(move |()| open_create()) /> }.into_any(),
                        Ok(list) if list.keys.is_empty() => {
                            let searched = search.get_untracked();
                            let what = match filter.get_untracked() {
                                Filter::All => "keys".to_owned(),
                                f => format!("{} keys", f.label().to_lowercase()),
                            };
                            let message = if list.page > 1 && list.total > 0 {
                                "There are no keys on this page.".to_owned()
                            } else if searched.trim().is_empty() {
                                format!("No {what}.")
                            } else {
                                format!("No {what} match \u{201C}{}\u{201D}.", searched.trim())
                            };
                            view! {
                                <div class="flex flex-col items-center px-6 py-12 text-center">
                                    <p class="text-sm font-medium text-slate-900">{message}</p>
                                    <button
                                        type="button"
                                        on:click=move |_| {
                                            search_text.set(String::new());
                                            set_search.set(String::new());
                                            choose_filter(Filter::All);
                                        }
                                        class="mt-3 rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-semibold text-slate-800 shadow-xs hover:bg-slate-50"
                                    >
                                        "Show all keys"
                                    </button>
                                </div>
                            }.into_any()
                        }
                        Ok(list) => {
                            let (on_revoke, on_edit, on_roll) = table_callbacks();
                            let last = last_page(list.per_page, list.total);
                            let current = list.page;
                            let range = page_range(list.page, list.per_page, list.total);
                            view! {
                                <KeyTable keys=list.keys now_ms=now_ms() on_revoke on_edit on_roll />
                                <nav aria-label="Pages" class="flex items-center justify-between gap-3 border-t border-slate-200 bg-slate-50/60 px-4 py-2.5 text-sm text-slate-600">
                                    <p aria-live="polite"><span class="tabular-nums">{range}</span></p>
                                    {(last > 1).then(|| view! {
                                        <div class="flex gap-2">
                                            <button type="button" disabled={current <= 1} on:click=move |_| go_to_page(current - 1)
                                                class="rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium text-slate-700 shadow-xs hover:bg-slate-50 disabled:cursor-not-allowed disabled:opacity-50">
                                                "Previous"
                                            </button>
                                            <button type="button" disabled={current >= last} on:click=move |_| go_to_page(current + 1)
                                                class="rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium text-slate-700 shadow-xs hover:bg-slate-50 disabled:cursor-not-allowed disabled:opacity-50">
                                                "Next"
                                            </button>
                                        </div>
                                    })}
                                </nav>
                            }.into_any()
                        }
                        Err(PortalError::Unauthorized) => {
                            go_to_login();
                            view! { <p class="p-6 text-sm text-slate-600">"You are signed out."</p> }.into_any()
                        }
                        Err(e) => view! { <p role="alert" class="p-6 text-sm text-red-700">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>

        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                settings.await.ok().map(|info| view! { <QuickStart info /> })
            })}
        </Suspense>

        <Show when=move || create_open.get()>
            <CreateKeyDialog action=create on_close=Callback::new(move |()| set_create_open.set(false)) />
        </Show>
        {move || created().map(|created| view! {
            <CopyOnceModal created on_done=Callback::new(move |()| create.value().set(None)) />
        })}
        {move || rolled().map(|created| view! {
            <CopyOnceModal created old_key=roll_note.get_untracked().unwrap_or_default() on_done=Callback::new(move |()| roll.value().set(None)) />
        })}
        {move || revoke_target.get().map(|key| view! {
            <RevokeKeyDialog key action=revoke on_close=Callback::new(move |()| set_revoke_target.set(None)) />
        })}
        {move || edit_target.get().map(|key| view! {
            <EditKeyDialog key action=edit on_close=Callback::new(move |()| set_edit_target.set(None)) />
        })}
        {move || roll_target.get().map(|key| view! {
            <RollKeyDialog
                key=key.clone()
                action=roll
                on_grace=Callback::new(move |grace: u64| set_roll_note.set(Some(if grace == 0 {
                    format!("The old key ({}) no longer works.", key.hint)
                } else {
                    old_key_fate(grace, key.expires_at, now_ms())
                })))
                on_close=Callback::new(move |()| set_roll_target.set(None))
            />
        })}
    }
}

#[component]
fn EmptyState(on_create: Callback<()>) -> impl IntoView {
    view! {
        <div class="flex flex-col items-center px-6 py-14 text-center">
            <span class="flex h-12 w-12 items-center justify-center rounded-full bg-sky-50 text-sky-700 ring-1 ring-sky-100">
                <KeyIcon class="h-6 w-6" />
            </span>
            <h2 class="mt-4 text-base font-semibold text-slate-900">"No API keys yet"</h2>
            <p class="mt-1 max-w-md text-sm text-slate-600">
                "Create a key for each place that calls the API — a CI/CD pipeline, a script, the desktop app — so you can revoke one without touching the others."
            </p>
            <button
                type="button"
                on:click=move |_| on_create.run(())
                class="mt-6 inline-flex items-center gap-2 rounded-lg border border-slate-300 bg-white px-4 py-2 text-sm font-semibold text-slate-800 shadow-xs hover:bg-slate-50"
            >
                "Create your first key"
            </button>
        </div>
    }
}

/// How many model names the box lists before "and N more".
const MODELS_SHOWN: usize = 12;

#[component]
fn QuickStart(info: QuickStartView) -> impl IntoView {
    let QuickStartView { api_base_url: base_url, models, how_to_add_a_provider } = info;
    let code = |text: String| view! { <code class="rounded bg-slate-100 px-1 py-0.5 font-mono text-xs text-slate-800">{text}</code> };
    let example = models.first().map(|model| {
        format!(
            "curl {base_url}/v1/chat/completions \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Authorization: Bearer $WORKJET_API_KEY\" \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello, world!\"}}]}}'"
        )
    });
    let more = models.len().saturating_sub(MODELS_SHOWN);
    let models_view = if models.is_empty() {
        view! {
            <div role="status" class="mt-4 rounded-lg border border-amber-200 bg-amber-50 p-3 text-sm text-amber-900">
                <p class="font-semibold">"No model provider is configured on this server yet."</p>
                <p class="mt-1">{format!("Until one is, requests for a model answer 404. To add one, {how_to_add_a_provider}.")}</p>
            </div>
        }
        .into_any()
    } else {
        view! {
            <div class="mt-4">
                <h3 class="text-xs font-semibold uppercase tracking-wide text-slate-500">"Models"</h3>
                <ul aria-label="Models" class="mt-2 flex flex-wrap gap-1.5">
                    {models.iter().take(MODELS_SHOWN).map(|m| view! {
                        <li class="rounded-md bg-slate-100 px-2 py-0.5 font-mono text-xs text-slate-700 ring-1 ring-inset ring-slate-200">{m.clone()}</li>
                    }).collect_view()}
                    {(more > 0).then(|| view! { <li class="px-1 py-0.5 text-xs text-slate-500">{format!("and {more} more")}</li> })}
                </ul>
            </div>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="quick-start-title" class="mt-8 rounded-xl border border-slate-200 bg-white p-5 shadow-xs">
            <h2 id="quick-start-title" class="text-sm font-semibold text-slate-900">"Use a key"</h2>
            <p class="mt-1 text-sm text-slate-600">
                "Send it as a Bearer token. The API is OpenAI-compatible: point an OpenAI SDK's base URL at "
                {code(format!("{base_url}/v1"))}
                ". Anthropic's SDKs work too, with base URL "
                {code(base_url.clone())}
                "."
            </p>
            {models_view}
            {example.map(|curl| view! {
                <pre class="mt-4 overflow-x-auto rounded-lg bg-slate-900 p-4 font-mono text-xs leading-relaxed text-slate-100"><code>{curl}</code></pre>
            })}
        </section>
    }
}
