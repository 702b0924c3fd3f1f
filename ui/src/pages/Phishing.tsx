// Report phishing: paste a link or drop/choose a saved message (.eml), add a note, send;
// shows the tracking id the server gave and when IT received it.
import { useEffect, useState } from "preact/hooks";

import { phishingReports, reportPhishingMessage, reportPhishingUrl, type PhishingReceipt } from "../api";
import { errorText, PageTitle } from "../components";
import { useApp } from "../context";

type Kind = "url" | "file";

export function Phishing() {
  const { m } = useApp();
  const [kind, setKind] = useState<Kind>("url");
  const [url, setUrl] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [note, setNote] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [receipt, setReceipt] = useState<PhishingReceipt | null>(null);
  const [sent, setSent] = useState<PhishingReceipt[]>([]);
  const [dragging, setDragging] = useState(false);

  useEffect(() => {
    phishingReports()
      .then(setSent)
      .catch(() => setSent([]));
  }, [receipt]);

  async function onSubmit(event: Event) {
    event.preventDefault();
    if (sending) return;
    setError(null);
    if (kind === "url" && url.trim() === "") return setError(m.t("phishing.needUrl"));
    if (kind === "file" && !file) return setError(m.t("phishing.needFile"));
    setSending(true);
    try {
      const trimmed = note.trim() === "" ? null : note;
      const answer = kind === "file" && file ? await reportPhishingMessage(file, trimmed) : await reportPhishingUrl(url, trimmed);
      setReceipt(answer);
      setUrl("");
      setFile(null);
      setNote("");
    } catch (err) {
      setError(m.t("phishing.failed", { error: errorText(err) }));
    } finally {
      setSending(false);
    }
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    const dropped = event.dataTransfer?.files[0];
    if (dropped) {
      setKind("file");
      setFile(dropped);
    }
  }

  return (
    <div class="phishing">
      <PageTitle>{m.t("phishing.title")}</PageTitle>
      <p class="lede">{m.t("phishing.intro")}</p>

      <form id="phishing-form" class="card form" onSubmit={onSubmit} noValidate>
        <fieldset class="kind">
          <legend>{m.t("phishing.kind")}</legend>
          <label>
            <input type="radio" name="kind" id="kind-url" value="url" checked={kind === "url"} onChange={() => setKind("url")} />
            {m.t("phishing.link")}
          </label>
          <label>
            <input type="radio" name="kind" id="kind-file" value="file" checked={kind === "file"} onChange={() => setKind("file")} />
            {m.t("phishing.file")}
          </label>
        </fieldset>

        {kind === "url" ? (
          <div class="field">
            <label for="phishing-url">{m.t("phishing.url")}</label>
            <input
              id="phishing-url"
              type="url"
              inputMode="url"
              autoComplete="off"
              spellcheck={false}
              placeholder="https://"
              value={url}
              onInput={(e) => setUrl(e.currentTarget.value)}
              aria-describedby="phishing-url-hint"
            />
            <p id="phishing-url-hint" class="hint">
              {m.t("phishing.urlHint")}
            </p>
          </div>
        ) : (
          <div class="field">
            <label for="phishing-file">{m.t("phishing.chooseFile")}</label>
            <div
              class="drop"
              data-dragging={dragging}
              onDragOver={(e) => {
                e.preventDefault();
                setDragging(true);
              }}
              onDragLeave={() => setDragging(false)}
              onDrop={onDrop}
            >
              <span>{file ? `${file.name} (${Math.ceil(file.size / 1024)} kB)` : m.t("phishing.drop")}</span>
              <input
                id="phishing-file"
                type="file"
                accept=".eml,message/rfc822"
                onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
                aria-describedby="phishing-file-hint"
              />
            </div>
            <p id="phishing-file-hint" class="hint">
              {m.t("phishing.fileHint")}
            </p>
          </div>
        )}

        <div class="field">
          <label for="phishing-note">{m.t("phishing.note")}</label>
          <textarea
            id="phishing-note"
            rows={3}
            maxLength={4096}
            placeholder={m.t("phishing.notePlaceholder")}
            value={note}
            onInput={(e) => setNote(e.currentTarget.value)}
          />
        </div>

        <div class="actions">
          <button type="submit" id="phishing-send" class="primary" aria-disabled={sending}>
            {sending ? m.t("phishing.sending") : m.t("phishing.send")}
          </button>
        </div>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
      </form>

      <div role="status" aria-live="polite">
        {receipt ? (
          <div id="phishing-result" class="card success" data-tracking-id={receipt.tracking_id}>
            <p class="success-title">{m.t("phishing.sent", { id: receipt.tracking_id })}</p>
            <p class="muted">{m.t("phishing.status", { when: m.dateTime(receipt.received_at) })}</p>
          </div>
        ) : null}
      </div>

      <section aria-labelledby="recent-heading">
        <h2 id="recent-heading" class="section-heading">
          {m.t("phishing.recent")}
        </h2>
        {sent.length === 0 ? (
          <p class="empty">{m.t("phishing.none")}</p>
        ) : (
          <ul id="phishing-sent" class="rows" role="list">
            {sent.map((r) => (
              <li key={r.tracking_id} class="row" data-tracking-id={r.tracking_id}>
                <div class="row-static">
                  <span class="row-title mono">{r.tracking_id}</span>
                  <span class="badge" data-status="pass">
                    {m.t("phishing.received")}
                  </span>
                  <span class="row-summary">
                    {r.subject.kind === "url" ? r.subject.url : r.subject.file_name} · {m.dateTime(r.received_at)}
                  </span>
                </div>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}
