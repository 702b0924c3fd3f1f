// Report phishing: paste a link or drop/choose a saved message (.eml), add a note, send;
// shows the tracking id the server gave and when IT received it, and each report's triage
// status with IT's reply (asked of the server when the page opens and on "Check for replies").
// IT's reply is shown as text, never as markup.
import { useEffect, useState } from "preact/hooks";

import {
  phishingReports,
  refreshPhishingReports,
  reportPhishingMessage,
  reportPhishingUrl,
  type PhishingReceipt,
  type Status,
  type TriageStatus,
} from "../api";
import { errorText, PageTitle } from "../components";
import { useApp } from "../context";

type Kind = "url" | "file";

/** The chip colour of each triage status, borrowed from the check statuses. */
const CHIP: Record<TriageStatus, Status> = {
  new: "unknown",
  investigating: "warn",
  phishing: "fail",
  spam: "warn",
  safe: "pass",
  unknown: "unknown",
};

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
  const [refreshing, setRefreshing] = useState(false);
  const [sentCount, setSentCount] = useState(0);
  const [offline, setOffline] = useState<string | null>(null);

  // What was last heard shows at once; the server's answer replaces it when it comes.
  async function refresh() {
    setRefreshing(true);
    try {
      setSent(await refreshPhishingReports());
      setOffline(null);
    } catch (err) {
      setOffline(errorText(err));
    } finally {
      setRefreshing(false);
    }
  }

  useEffect(() => {
    phishingReports()
      .then((local) => {
        setSent(local);
        if (local.length > 0) void refresh();
      })
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
      // A new file input: the old one would keep showing the sent file's name.
      setSentCount((n) => n + 1);
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
                key={sentCount}
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
          <>
            <div class="actions">
              <button type="button" id="phishing-refresh" onClick={() => void refresh()} aria-disabled={refreshing}>
                {refreshing ? m.t("phishing.refreshing") : m.t("phishing.refresh")}
              </button>
            </div>
            {offline ? (
              <p id="phishing-offline" class="muted" role="status">
                {m.t("phishing.offline", { error: offline })}
              </p>
            ) : null}
            <ul id="phishing-sent" class="rows" role="list">
              {sent.map((r) => {
                const status = r.status ?? "new";
                return (
                  <li key={r.tracking_id} class="row" data-tracking-id={r.tracking_id} data-triage={status}>
                    <div class="row-static">
                      <span class="row-title mono">{r.tracking_id}</span>
                      <span class="badge triage" data-status={CHIP[status]}>
                        {m.t(`phishing.triage.${status}`)}
                      </span>
                      <span class="row-summary">
                        {r.subject.kind === "url" ? r.subject.url : r.subject.file_name} · {m.dateTime(r.received_at)}
                      </span>
                    </div>
                    {r.reply ? (
                      <div class="reply">
                        <p class="muted">{m.t("phishing.reply", { when: r.updated_at ? m.dateTime(r.updated_at) : "" })}</p>
                        {/* Text content only: Preact escapes it, and white-space keeps IT's line breaks. */}
                        <p class="reply-text">{r.reply}</p>
                      </div>
                    ) : null}
                  </li>
                );
              })}
            </ul>
          </>
        )}
      </section>
    </div>
  );
}
