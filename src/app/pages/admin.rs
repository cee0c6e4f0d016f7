//! Admin (`/admin`, administrators only): people — search, disable, enable —, anyone's API key
//! by id or hint — its owner, revoke —, and everyone's security log.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    app::{
        components::dialog::Modal,
        pages::sessions::go_to_login,
        server_fns::{AdminRevokeKey, AdminSetDisabled, admin_find_keys, admin_log, admin_people, current_user},
    },
    display::{describe_event, format_date, format_date_time, format_relative},
    wire::{AdminEventView, AdminKeyView, AdminPersonView, PortalError},
};

const CARD: &str = "mt-4 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs";
const INPUT: &str = "block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm text-slate-900 shadow-xs placeholder:text-slate-400 focus:border-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-500/30";
const BUTTON: &str = "inline-flex shrink-0 items-center justify-center rounded-lg bg-slate-900 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-500";
const SECONDARY: &str = "inline-flex items-center rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium text-slate-700 shadow-xs hover:bg-slate-50 disabled:cursor-not-allowed disabled:opacity-50";

/// What failed, in a box (or off to the sign-in page when signed out).
fn failure(error: PortalError) -> AnyView {
    if error == PortalError::Unauthorized {
        go_to_login();
    }
    view! { <p role="alert" class="p-6 text-sm text-red-700">{error.to_string()}</p> }.into_any()
}

fn badge(text: &'static str, tone: &'static str) -> impl IntoView {
    let colours = match tone {
        "green" => "bg-emerald-50 text-emerald-700 ring-emerald-200",
        "red" => "bg-red-50 text-red-700 ring-red-200",
        "sky" => "bg-sky-50 text-sky-800 ring-sky-200",
        _ => "bg-slate-100 text-slate-600 ring-slate-200",
    };
    view! { <span class=format!("rounded-full px-2 py-0.5 text-xs font-medium ring-1 {colours}")>{text}</span> }
}

/// The Admin page: its sections for administrators, a notice for anyone else (every server
/// function asks again).
#[component]
pub fn AdminPage() -> impl IntoView {
    let me = Resource::new(|| (), |()| current_user());
    view! {
        <Title text="Admin" />
        <div>
            <h1 class="text-2xl font-semibold tracking-tight text-slate-900">"Admin"</h1>
            <p class="mt-1 max-w-2xl text-sm text-slate-600">
                "People, anyone's API keys and everyone's security log. Disabling a person signs them out everywhere and refuses their API keys at once, on every Workjet server; they are told by their security log. Every action here is recorded with your name."
            </p>
        </div>
        <Suspense fallback=|| view! { <div class=CARD><p class="p-6 text-sm text-slate-500">"Loading…"</p></div> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) if user.admin => view! { <Sections /> }.into_any(),
                    Ok(Some(_)) => view! {
                        <div class=CARD><p role="alert" class="p-6 text-sm text-slate-700">{PortalError::NotAdmin.to_string()}" This page is for the administrators named in WJ_ADMIN_EMAILS."</p></div>
                    }.into_any(),
                    Ok(None) => failure(PortalError::Unauthorized),
                    Err(e) => failure(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Sections() -> impl IntoView {
    let set_disabled = ServerAction::<AdminSetDisabled>::new();
    let revoke = ServerAction::<AdminRevokeKey>::new();
    view! {
        <People set_disabled />
        <FindKey revoke />
        <EveryonesLog set_disabled revoke />
    }
}

#[component]
fn People(set_disabled: ServerAction<AdminSetDisabled>) -> impl IntoView {
    let (typed, set_typed) = signal(String::new());
    let (search, set_search) = signal(String::new());
    let (before, set_before) = signal(None::<i64>);
    let people = Resource::new(move || (search.get(), before.get(), set_disabled.version().get()), |(q, b, _)| admin_people(q, b));
    let confirm = RwSignal::new(None::<AdminPersonView>);
    Effect::new(move |_| {
        if matches!(set_disabled.value().get(), Some(Ok(_))) {
            confirm.set(None);
        }
    });
    view! {
        <section aria-labelledby="people-title" class="mt-8">
            <h2 id="people-title" class="text-base font-semibold text-slate-900">"People"</h2>
            <form
                class="mt-3 flex max-w-xl gap-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    set_before.set(None);
                    set_search.set(typed.get_untracked());
                }
            >
                <label for="people-search" class="sr-only">"Search people"</label>
                <input id="people-search" type="search" placeholder="Email or name" class=INPUT prop:value=typed on:input=move |ev| set_typed.set(event_target_value(&ev)) />
                <button type="submit" class=BUTTON>"Search"</button>
            </form>
            {move || set_disabled.value().get().and_then(|r| r.err()).filter(|_| confirm.with(Option::is_none)).map(|e| view! {
                <p role="alert" class="mt-3 rounded-lg border border-red-200 bg-red-50 p-3 text-sm text-red-700">{e.to_string()}</p>
            })}
            <div class=CARD>
                <Transition fallback=|| view! { <p class="p-6 text-sm text-slate-500">"Loading people…"</p> }>
                    {move || Suspend::new(async move {
                        match people.await {
                            Ok(page) => view! {
                                <PeopleTable people=page.people set_disabled confirm />
                                <nav aria-label="People pages" class="flex justify-end gap-2 border-t border-slate-200 bg-slate-50/60 px-4 py-3">
                                    <button type="button" class=SECONDARY disabled=before.get_untracked().is_none() on:click=move |_| set_before.set(None)>"Newest"</button>
                                    <button type="button" class=SECONDARY disabled=page.older.is_none() on:click=move |_| set_before.set(page.older)>"Older"</button>
                                </nav>
                            }.into_any(),
                            Err(e) => failure(e),
                        }
                    })}
                </Transition>
            </div>
        </section>
        <Show when=move || confirm.with(Option::is_some)>
            {move || confirm.get().map(|person| view! { <DisableDialog person set_disabled on_close=Callback::new(move |()| confirm.set(None)) /> })}
        </Show>
    }
}

#[component]
fn PeopleTable(
    people: Vec<AdminPersonView>,
    set_disabled: ServerAction<AdminSetDisabled>,
    confirm: RwSignal<Option<AdminPersonView>>,
) -> impl IntoView {
    if people.is_empty() {
        return view! { <p class="p-6 text-sm text-slate-600">"Nobody matches."</p> }.into_any();
    }
    view! {
        <table class="w-full table-fixed text-left text-sm">
            <caption class="sr-only">"People, newest first"</caption>
            <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                <tr>
                    <th scope="col" class="px-4 py-3">"Person"</th>
                    <th scope="col" class="w-28 px-4 py-3">"Status"</th>
                    <th scope="col" class="hidden w-36 px-4 py-3 md:table-cell">"Last sign-in"</th>
                    <th scope="col" class="w-28 px-4 py-3 text-right"><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody class="divide-y divide-slate-100">
                {people.into_iter().map(|p| {
                    let person = p.clone();
                    let action = if p.me {
                        None
                    } else if p.disabled {
                        let id = p.id;
                        Some(view! {
                            <button type="button" aria-label=format!("Enable {}", p.email) on:click=move |_| { set_disabled.dispatch(AdminSetDisabled { user_id: id, disabled: false }); }
                                class="rounded-md px-2.5 py-1.5 text-sm font-medium text-slate-700 hover:bg-slate-100">"Enable"</button>
                        }.into_any())
                    } else {
                        Some(view! {
                            <button type="button" aria-label=format!("Disable {}", p.email) on:click=move |_| confirm.set(Some(person.clone()))
                                class="rounded-md px-2.5 py-1.5 text-sm font-medium text-red-700 hover:bg-red-50">"Disable"</button>
                        }.into_any())
                    };
                    view! {
                        <tr data-email=p.email.clone()>
                            <td class="px-4 py-3">
                                <div class="flex flex-wrap items-center gap-2">
                                    <span class="font-medium text-slate-900">{p.name.clone()}</span>
                                    {p.admin.then(|| badge("Admin", "sky"))}
                                    {p.me.then(|| badge("You", "slate"))}
                                </div>
                                <p class="truncate text-xs text-slate-500" title=p.email.clone()>{p.email.clone()}</p>
                            </td>
                            <td class="px-4 py-3">{if p.disabled { badge("Disabled", "red").into_any() } else { badge("Active", "green").into_any() }}</td>
                            <td class="hidden px-4 py-3 text-slate-600 md:table-cell" title=format_date_time(p.last_sign_in_at)>{format_date(p.last_sign_in_at)}</td>
                            <td class="px-4 py-3 text-right">{action}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn DisableDialog(person: AdminPersonView, set_disabled: ServerAction<AdminSetDisabled>, on_close: Callback<()>) -> impl IntoView {
    let id = person.id;
    let pending = set_disabled.pending();
    let error = move || set_disabled.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    view! {
        <Modal labelled_by="disable-user-title" described_by="disable-user-desc" on_close>
            <h2 id="disable-user-title" class="text-lg font-semibold text-slate-900">{format!("Disable {}?", person.email)}</h2>
            <p id="disable-user-desc" class="mt-2 text-sm text-slate-600">
                "They will be signed out everywhere at once, their API keys will be refused with 401 from the very next request, and they cannot sign in until you enable them again."
            </p>
            {move || error().map(|message| view! { <p role="alert" class="mt-3 text-sm text-red-700">{message}</p> })}
            <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                <button type="button" autofocus on:click=move |_| on_close.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">"Cancel"</button>
                <button
                    type="button"
                    disabled=move || pending.get()
                    on:click=move |_| {
                        if !pending.get_untracked() {
                            set_disabled.dispatch(AdminSetDisabled { user_id: id, disabled: true });
                        }
                    }
                    class="rounded-lg bg-red-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-red-500 disabled:cursor-wait disabled:opacity-70"
                >
                    {move || if pending.get() { "Disabling…" } else { "Disable account" }}
                </button>
            </div>
        </Modal>
    }
}

#[component]
fn FindKey(revoke: ServerAction<AdminRevokeKey>) -> impl IntoView {
    let (typed, set_typed) = signal(String::new());
    let (query, set_query) = signal(String::new());
    let found = Resource::new(
        move || (query.get(), revoke.version().get()),
        |(q, _)| async move { if q.trim().is_empty() { Ok(None) } else { admin_find_keys(q).await.map(Some) } },
    );
    let confirm = RwSignal::new(None::<AdminKeyView>);
    Effect::new(move |_| {
        if matches!(revoke.value().get(), Some(Ok(_))) {
            confirm.set(None);
        }
    });
    view! {
        <section aria-labelledby="find-key-title" class="mt-10">
            <h2 id="find-key-title" class="text-base font-semibold text-slate-900">"Find an API key"</h2>
            <p class="mt-1 text-sm text-slate-600">"By its id, or by its hint as key lists show it (wj_live_a1b2…x9y8)."</p>
            <form
                class="mt-3 flex max-w-xl gap-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    set_query.set(typed.get_untracked());
                }
            >
                <label for="key-query" class="sr-only">"Key id or hint"</label>
                <input id="key-query" type="search" placeholder="42 or wj_live_a1b2…x9y8" class=format!("{INPUT} font-mono") prop:value=typed on:input=move |ev| set_typed.set(event_target_value(&ev)) />
                <button type="submit" class=BUTTON>"Find key"</button>
            </form>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match found.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(keys)) if keys.is_empty() => view! { <div class=CARD><p class="p-6 text-sm text-slate-600">"No API key matches."</p></div> }.into_any(),
                        Ok(Some(keys)) => view! { <div class=CARD><KeyResults keys confirm /></div> }.into_any(),
                        Err(e) => view! { <div class=CARD>{failure(e)}</div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <Show when=move || confirm.with(Option::is_some)>
            {move || confirm.get().map(|key| view! { <RevokeAnyKeyDialog key revoke on_close=Callback::new(move |()| confirm.set(None)) /> })}
        </Show>
    }
}

#[component]
fn KeyResults(keys: Vec<AdminKeyView>, confirm: RwSignal<Option<AdminKeyView>>) -> impl IntoView {
    view! {
        <ul class="divide-y divide-slate-100" aria-label="Keys found">
            {keys.into_iter().map(|k| {
                let key = k.clone();
                let status = match k.status.as_str() {
                    "active" => badge("Active", "green").into_any(),
                    "revoked" => badge("Revoked", "red").into_any(),
                    _ => badge("Expired", "slate").into_any(),
                };
                let owner = k.owner.as_ref().map_or_else(|| "a deleted account".to_owned(), |o| format!("{} ({})", o.name, o.email));
                view! {
                    <li class="flex flex-col gap-3 p-4 sm:flex-row sm:items-center sm:justify-between">
                        <div class="min-w-0">
                            <div class="flex flex-wrap items-center gap-2">
                                <span class="font-medium text-slate-900">{k.name.clone()}</span>
                                <span class="text-xs text-slate-500">{format!("#{}", k.id)}</span>
                                {status}
                            </div>
                            <p class="mt-0.5 font-mono text-xs text-slate-600">{k.hint.clone()}</p>
                            <p class="mt-1 text-sm text-slate-600">"Owner: "<span class="font-medium text-slate-900">{owner}</span></p>
                            <p class="mt-0.5 text-xs text-slate-500">
                                {format!("Created {}", format_date(k.created_at))}
                                {k.last_used_at.map(|t| format!(" · last used {}", format_date_time(t)))}
                            </p>
                        </div>
                        {(k.status == "active").then(|| view! {
                            <button type="button" aria-label=format!("Revoke {}", k.name) on:click=move |_| confirm.set(Some(key.clone()))
                                class="shrink-0 rounded-lg border border-red-200 bg-white px-3 py-1.5 text-sm font-semibold text-red-700 shadow-xs hover:bg-red-50">"Revoke"</button>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

#[component]
fn RevokeAnyKeyDialog(key: AdminKeyView, revoke: ServerAction<AdminRevokeKey>, on_close: Callback<()>) -> impl IntoView {
    let id = key.id;
    let pending = revoke.pending();
    let error = move || revoke.value().get().and_then(|r| r.err()).map(|e| e.to_string());
    let owner = key.owner.as_ref().map_or_else(|| "a deleted account".to_owned(), |o| o.email.clone());
    view! {
        <Modal labelled_by="admin-revoke-title" described_by="admin-revoke-desc" on_close>
            <h2 id="admin-revoke-title" class="text-lg font-semibold text-slate-900">{format!("Revoke \u{201C}{}\u{201D}?", key.name)}</h2>
            <p id="admin-revoke-desc" class="mt-2 text-sm text-slate-600">
                "This key of " <span class="font-medium text-slate-900">{owner}</span> " (" <span class="font-mono text-slate-800">{key.hint.clone()}</span>
                ") will be refused with 401 from the very next request, on every server. Its owner's security log will say an administrator revoked it. Revoking cannot be undone."
            </p>
            {move || error().map(|message| view! { <p role="alert" class="mt-3 text-sm text-red-700">{message}</p> })}
            <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                <button type="button" autofocus on:click=move |_| on_close.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">"Cancel"</button>
                <button
                    type="button"
                    disabled=move || pending.get()
                    on:click=move |_| {
                        if !pending.get_untracked() {
                            revoke.dispatch(AdminRevokeKey { id });
                        }
                    }
                    class="rounded-lg bg-red-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-red-500 disabled:cursor-wait disabled:opacity-70"
                >
                    {move || if pending.get() { "Revoking…" } else { "Revoke key" }}
                </button>
            </div>
        </Modal>
    }
}

#[component]
fn EveryonesLog(set_disabled: ServerAction<AdminSetDisabled>, revoke: ServerAction<AdminRevokeKey>) -> impl IntoView {
    let (before, set_before) = signal(None::<i64>);
    let log = Resource::new(move || (before.get(), set_disabled.version().get(), revoke.version().get()), |(b, _, _)| admin_log(b));
    view! {
        <section aria-labelledby="everyone-log-title" class="mt-10">
            <h2 id="everyone-log-title" class="text-base font-semibold text-slate-900">"Everyone's security log"</h2>
            <p class="mt-1 text-sm text-slate-600">"Every sign-in, sign-out, key change and administrator action, newest first."</p>
            <div class=CARD>
                <Transition fallback=|| view! { <p class="p-6 text-sm text-slate-500">"Loading the security log…"</p> }>
                    {move || Suspend::new(async move {
                        match log.await {
                            Ok(page) => {
                                let now_ms = page.now_ms;
                                view! {
                                    <table class="w-full table-fixed text-left text-sm">
                                        <caption class="sr-only">"Everyone's security events, newest first"</caption>
                                        <thead class="whitespace-nowrap border-b border-slate-200 bg-slate-50 text-xs font-semibold uppercase tracking-wide text-slate-500">
                                            <tr>
                                                <th scope="col" class="w-32 px-4 py-3 sm:w-44">"When"</th>
                                                <th scope="col" class="px-4 py-3">"Event"</th>
                                                <th scope="col" class="hidden w-56 px-4 py-3 md:table-cell">"Who"</th>
                                                <th scope="col" class="hidden w-32 px-4 py-3 lg:table-cell">"IP address"</th>
                                            </tr>
                                        </thead>
                                        <tbody class="divide-y divide-slate-100">
                                            {page.events.into_iter().map(|e| view! { <LogRow e now_ms /> }).collect_view()}
                                        </tbody>
                                    </table>
                                    <nav aria-label="Security log pages" class="flex justify-end gap-2 border-t border-slate-200 bg-slate-50/60 px-4 py-3">
                                        <button type="button" class=SECONDARY disabled=before.get_untracked().is_none() on:click=move |_| set_before.set(None)>"Newest"</button>
                                        <button type="button" class=SECONDARY disabled=page.older.is_none() on:click=move |_| set_before.set(page.older)>"Older"</button>
                                    </nav>
                                }.into_any()
                            }
                            Err(e) => failure(e),
                        }
                    })}
                </Transition>
            </div>
        </section>
    }
}

#[component]
fn LogRow(e: AdminEventView, now_ms: i64) -> impl IntoView {
    let what = describe_event(&e.event.action, e.event.target.as_deref(), e.event.detail.as_ref());
    let who = e.actor_email.clone().unwrap_or_else(|| "—".into());
    let whom = e.subject_email.clone().map(|s| format!("about {s}"));
    view! {
        <tr class="align-top" data-action=e.event.action.clone()>
            <td class="px-4 py-3">
                <span class="block text-slate-900">{format_relative(e.event.created_at, now_ms)}</span>
                <span class="mt-0.5 block text-xs text-slate-500">{format_date_time(e.event.created_at)}</span>
            </td>
            <td class="break-words px-4 py-3">
                <span class="font-medium text-slate-900">{what}</span>
                <p class="mt-0.5 truncate text-xs text-slate-500 md:hidden">{who.clone()}</p>
            </td>
            <td class="hidden px-4 py-3 text-slate-700 md:table-cell">
                <span class="block truncate" title=who.clone()>{who.clone()}</span>
                {whom.map(|w| view! { <span class="block truncate text-xs text-slate-500" title=w.clone()>{w.clone()}</span> })}
            </td>
            <td class="hidden truncate px-4 py-3 font-mono text-xs text-slate-600 lg:table-cell">{e.event.ip.clone().unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}
