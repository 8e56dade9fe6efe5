// Passkeys: add one on /settings/security, sign in with one on /auth/login.
// WebAuthn wants binary fields as ArrayBuffers; the API speaks base64url JSON.

const toBuffer = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
};

const toText = (buffer) => {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.message || `The server answered ${response.status}.`);
  return data;
}

function say(box, text) {
  const status = box.querySelector("[data-passkey-status]");
  if (status) status.textContent = text;
}

function problem(error) {
  // The browser's own errors when the person cancels are not worth their wording.
  if (error?.name === "NotAllowedError") return "Cancelled, or no passkey was available.";
  return error?.message || "Something went wrong.";
}

async function register(box) {
  const options = await api("/api/auth/passkey/generate-register-options");
  options.challenge = toBuffer(options.challenge);
  options.user.id = toBuffer(options.user.id);
  for (const item of options.excludeCredentials || []) item.id = toBuffer(item.id);
  const credential = await navigator.credentials.create({ publicKey: options });
  const name = box.querySelector("[data-passkey-name]")?.value || undefined;
  await api("/api/auth/passkey/verify-registration", {
    name,
    response: {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        attestationObject: toText(credential.response.attestationObject),
        transports: credential.response.getTransports?.() || [],
      },
    },
  });
}

async function signIn() {
  const options = await api("/api/auth/passkey/generate-authenticate-options");
  options.challenge = toBuffer(options.challenge);
  for (const item of options.allowCredentials || []) item.id = toBuffer(item.id);
  const credential = await navigator.credentials.get({ publicKey: options });
  const result = credential.response;
  await api("/api/auth/passkey/verify-authentication", {
    response: {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(result.clientDataJSON),
        authenticatorData: toText(result.authenticatorData),
        signature: toText(result.signature),
        userHandle: result.userHandle ? toText(result.userHandle) : undefined,
      },
    },
  });
}

function init() {
  if (!window.PublicKeyCredential) return; // the buttons stay hidden
  const add = document.querySelector("[data-passkey-add]");
  if (add) {
    add.hidden = false;
    const button = add.querySelector("[data-passkey-register]");
    button.addEventListener("click", async () => {
      button.disabled = true;
      say(add, "Follow your browser's prompt…");
      try {
        await register(add);
        say(add, "Passkey added.");
        window.location.reload();
      } catch (error) {
        say(add, problem(error));
        button.disabled = false;
      }
    });
  }
  const box = document.querySelector("[data-passkey-signin-box]");
  if (box) {
    box.hidden = false;
    const button = box.querySelector("[data-passkey-signin]");
    button.addEventListener("click", async () => {
      button.disabled = true;
      say(box, "Follow your browser's prompt…");
      try {
        await signIn();
        say(box, "Signed in.");
        window.location.assign(button.dataset.next || "/");
      } catch (error) {
        say(box, problem(error));
        button.disabled = false;
      }
    });
  }
}

init();
