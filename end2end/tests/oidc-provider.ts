// A minimal OpenID Connect provider for end-to-end tests that cannot use Workjet's built-in
// one (it only serves loopback URLs): discovery, an authorize endpoint that signs the
// configured person straight in, a token endpoint that checks the client secret and the PKCE
// verifier, and a JWKS with a real RS256 key.
import * as crypto from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";

export interface Person {
  sub: string;
  email: string;
  name: string;
}

export interface Provider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Requests the token endpoint refused, with the reason. */
  refusals: string[];
  close(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

export async function startProvider(person: Person): Promise<Provider> {
  const clientId = "e2e-client.apps.example";
  const clientSecret = crypto.randomBytes(24).toString("hex");
  const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = "e2e-" + crypto.randomBytes(4).toString("hex");
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
  const pending = new Map<string, { nonce: string; challenge: string; redirectUri: string }>();
  const refusals: string[] = [];
  let issuer = "";

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", issuer);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/.well-known/openid-configuration") {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ["code"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (url.pathname === "/jwks") return json(200, { keys: [jwk] });
    if (url.pathname === "/authorize") {
      const q = url.searchParams;
      if (q.get("client_id") !== clientId || q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
        return json(400, { error: "invalid_request" });
      }
      const code = crypto.randomBytes(16).toString("hex");
      pending.set(code, { nonce: q.get("nonce") ?? "", challenge: q.get("code_challenge")!, redirectUri: q.get("redirect_uri")! });
      const back = new URL(q.get("redirect_uri")!);
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state") ?? "");
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === "/token" && req.method === "POST") {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        const form = new URLSearchParams(body);
        const basic = (req.headers.authorization ?? "").replace(/^Basic /, "");
        const [id, secret] = basic
          ? Buffer.from(basic, "base64").toString().split(":").map(decodeURIComponent)
          : [form.get("client_id"), form.get("client_secret")];
        const flow = pending.get(form.get("code") ?? "");
        pending.delete(form.get("code") ?? "");
        const refuse = (reason: string) => {
          refusals.push(reason);
          json(400, { error: "invalid_grant", error_description: reason });
        };
        if (id !== clientId || secret !== clientSecret) return refuse("client authentication failed");
        if (!flow) return refuse("unknown or used code");
        if (form.get("redirect_uri") !== flow.redirectUri) return refuse("redirect_uri mismatch");
        const verifier = form.get("code_verifier") ?? "";
        if (b64url(crypto.createHash("sha256").update(verifier).digest()) !== flow.challenge) return refuse("PKCE verifier mismatch");
        const now = Math.floor(Date.now() / 1000);
        const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
        const claims = b64url(
          JSON.stringify({
            iss: issuer,
            aud: clientId,
            sub: person.sub,
            email: person.email,
            email_verified: true,
            name: person.name,
            nonce: flow.nonce,
            iat: now,
            exp: now + 300,
          }),
        );
        const signature = b64url(crypto.sign("sha256", Buffer.from(`${header}.${claims}`), privateKey));
        json(200, { access_token: crypto.randomBytes(16).toString("hex"), token_type: "Bearer", expires_in: 300, id_token: `${header}.${claims}.${signature}` });
      });
      return;
    }
    json(404, { error: "not_found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    clientId,
    clientSecret,
    refusals,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
