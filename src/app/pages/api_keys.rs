//! Settings > API Keys: the list, "Create API Key" (then the copy-once modal), and
//! "Revoke" with a confirmation. Rendered completely on the server; after hydration it
//! all works without a reload.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    app::{
        components::{
            copy_once_modal::CopyOnceModal, create_key_dialog::CreateKeyDialog, icons::KeyIcon, key_table::KeyTable,
            revoke_key_dialog::RevokeKeyDialog,
        },
        pages::sessions::go_to_login,
        server_fns::{CreateApiKey, RevokeApiKey, list_api_keys, quick_start},
    },
    wire::{ApiKeyView, PortalError, QuickStartView},
};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_api_keys());
    let settings = Resource::new(|| (), |()| quick_start());
    let (create_open, set_create_open) = signal(false);
    let (revoke_target, set_revoke_target) = signal(None::<ApiKeyView>);

    let open_create = move || {
        create.value().set(None);
        set_create_open.set(true);
    };
    // A created key closes the create dialog; the copy-once modal takes over.
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            set_create_open.set(false);
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
    let created = move || create.value().get().and_then(Result::ok);

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

        <section aria-label="API keys" class="mt-6 overflow-hidden rounded-xl border border-slate-200 bg-white shadow-xs">
            <Transition fallback=|| view! { <p class="p-6 text-sm text-slate-500">"Loading keys…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if list.is_empty() => view! { <EmptyState on_create=Callback::new(move |()| open_create()) /> }.into_any(),
                        Ok(list) => view! { <KeyTable keys=list now_ms=now_ms() on_revoke=Callback::new(move |key| {
                            revoke.value().set(None);
                            set_revoke_target.set(Some(key));
                        }) /> }.into_any(),
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
        {move || revoke_target.get().map(|key| view! {
            <RevokeKeyDialog key action=revoke on_close=Callback::new(move |()| set_revoke_target.set(None)) />
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
