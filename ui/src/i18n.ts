// The one message catalogue: every word the window shows, in English, German and French.
// The English table is the reference; the others are typed against its keys, so a missing
// translation fails the build. Dates and durations go through Intl in the chosen language.
import type { CheckId, Phase, Status } from "./api";

const en = {
  "app.name": "Tandem",
  "nav.label": "Sections",
  "skip": "Skip to content",
  "nav.home": "Overview",
  "nav.phishing": "Report phishing",
  "nav.itCanSee": "What IT can see",
  "nav.history": "History",
  "nav.settings": "Settings",
  "loading": "Loading…",
  "checkNow": "Check now",
  "checking": "Checking…",
  "checkAgain": "Check again",
  "checkFailed": "Check failed: {error}",
  "headline.none": "No checks have run yet",
  "headline.running": "Checking this computer…",
  "headline.allGood": "All good: nothing needs you",
  "headline.one": "1 thing needs you",
  "headline.many": "{n} things need you",
  "conn.enrolled": "Connected to {host}",
  "conn.lastSync": "last sync {ago}",
  "conn.notSynced": "not synced yet",
  "conn.notEnrolled": "Not enrolled: nothing is sent to IT",
  "conn.checked": "checked {ago}",
  "conn.error": "Could not reach the server: {error}",
  "home.yourPart": "Your part",
  "home.itPart": "IT's part",
  "home.score": "Your part: {done} of {total} done",
  "home.nextDeadline": "Next deadline: {what}, {when}",
  "home.noDeadline": "No deadlines: nothing of yours is open",
  "home.itIntro": "What IT takes care of for you",
  "home.by": "by {who}",
  "home.paused": "Reminders paused until {time}",
  "home.emptyYours": "Results appear here after the first check.",
  "home.open": "Open {title}",
  "status.pass": "Done",
  "status.warn": "Needs you",
  "status.fail": "Action required",
  "status.unknown": "Could not check",
  "status.not_applicable": "Not applicable",
  "phase.notice": "New",
  "phase.reminder": "Reminder",
  "phase.imminent": "Due soon",
  "phase.overdue": "Overdue",
  "item.back": "Back to overview",
  "item.whatsWrong": "What is wrong",
  "item.why": "Why it matters",
  "item.how": "How to fix it",
  "item.noSteps": "There is nothing for you to do here.",
  "item.openFix": "Open the settings",
  "item.openLink": "Open the page",
  "item.deadline": "Deadline",
  "item.due": "{date} ({relative})",
  "item.deferralsLeft": "You can postpone this {n} more times.",
  "item.noDeferrals": "This can no longer be postponed.",
  "item.later": "Remind me later",
  "item.deferredUntil": "Postponed until {date}",
  "item.itsIt": "IT looks after this one. If it stays red, your helpdesk knows.",
  "item.notFound": "Tandem has no result for this check yet.",
  "item.checkedAt": "Last checked {ago}",
  "phishing.title": "Report phishing",
  "phishing.intro": "Got a message that looks wrong? Send it to IT. You will get a tracking id to quote if you talk to them.",
  "phishing.link": "A link",
  "phishing.file": "A saved message (.eml)",
  "phishing.kind": "What are you reporting?",
  "phishing.url": "Link",
  "phishing.urlHint": "Paste the link from the message. Do not open it.",
  "phishing.chooseFile": "Message file",
  "phishing.fileHint": "In your mail program, save or drag the message out as a .eml file.",
  "phishing.drop": "Drop the .eml file here, or choose it",
  "phishing.note": "Note for IT (optional)",
  "phishing.notePlaceholder": "Where did it come from? Did you click anything?",
  "phishing.send": "Send to IT",
  "phishing.sending": "Sending…",
  "phishing.sent": "Sent. Your tracking id is {id}.",
  "phishing.status": "Received by IT {when}.",
  "phishing.needUrl": "Paste the link first.",
  "phishing.needFile": "Choose the message file first.",
  "phishing.failed": "Not sent: {error}",
  "phishing.recent": "Your reports",
  "phishing.none": "You have not reported anything from this computer yet.",
  "phishing.received": "Received",
  "phishing.triage.new": "Received",
  "phishing.triage.investigating": "IT is looking into it",
  "phishing.triage.phishing": "Confirmed phishing",
  "phishing.triage.spam": "Spam",
  "phishing.triage.safe": "Safe",
  "phishing.triage.unknown": "Updated by IT",
  "phishing.reply": "IT replied {when}:",
  "phishing.refresh": "Check for replies",
  "phishing.refreshing": "Checking…",
  "phishing.offline": "Could not ask IT just now ({error}). This is what was last heard.",
  "itCanSee.title": "What IT can see",
  "itCanSee.intro": "This is the last report this computer sent to IT, exactly as it was sent. Nothing else leaves this computer.",
  "itCanSee.when": "Received by IT {when} ({date}).",
  "itCanSee.none": "Nothing has been sent to IT yet.",
  "itCanSee.summary": "In short",
  "itCanSee.device": "Device: {host}, {os}",
  "itCanSee.results": "{n} check results",
  "itCanSee.events": "{n} events (reminders shown, postponed or acted on)",
  "itCanSee.raw": "Show the report exactly as sent",
  "itCanSee.resultsHeading": "The results IT received",
  "history.title": "History",
  "history.none": "Nothing has changed yet.",
  "history.was": "was: {from}",
  "history.phishing": "Phishing report sent ({id})",
  "settings.title": "Settings",
  "settings.language": "Language",
  "settings.theme": "Appearance",
  "settings.theme.system": "Same as the system",
  "settings.theme.light": "Light",
  "settings.theme.dark": "Dark",
  "settings.autostart": "Start Tandem when I log in",
  "settings.autostartHint": "Tandem keeps checking quietly in the background.",
  "settings.managedByIt": "Managed by IT",
  "settings.about": "About Tandem",
  "settings.version": "Version",
  "settings.server": "Server",
  "settings.device": "Device id",
  "settings.lastSync": "Last sync",
  "settings.policy": "Policy",
  "settings.policy.built_in": "Built-in defaults",
  "settings.policy.server": "From IT (version {v})",
  "settings.policy.managed": "Managed on this computer",
  "settings.never": "Never",
  "settings.notEnrolled": "Not enrolled",
  "settings.pause": "Pause reminders for 1 hour",
  "settings.pausedUntil": "Reminders paused until {time}",
  "settings.helpdesk": "Contact the helpdesk",
} as const;

export type MessageKey = keyof typeof en;
type Catalogue = Record<MessageKey, string>;

const de: Catalogue = {
  "app.name": "Tandem",
  "nav.label": "Bereiche",
  "skip": "Zum Inhalt springen",
  "nav.home": "Übersicht",
  "nav.phishing": "Phishing melden",
  "nav.itCanSee": "Was die IT sieht",
  "nav.history": "Verlauf",
  "nav.settings": "Einstellungen",
  "loading": "Wird geladen…",
  "checkNow": "Jetzt prüfen",
  "checking": "Wird geprüft…",
  "checkAgain": "Erneut prüfen",
  "checkFailed": "Prüfung fehlgeschlagen: {error}",
  "headline.none": "Noch keine Prüfung gelaufen",
  "headline.running": "Dieser Computer wird geprüft…",
  "headline.allGood": "Alles in Ordnung: nichts zu tun",
  "headline.one": "1 Sache braucht Sie",
  "headline.many": "{n} Sachen brauchen Sie",
  "conn.enrolled": "Verbunden mit {host}",
  "conn.lastSync": "zuletzt synchronisiert {ago}",
  "conn.notSynced": "noch nicht synchronisiert",
  "conn.notEnrolled": "Nicht angemeldet: nichts wird an die IT gesendet",
  "conn.checked": "geprüft {ago}",
  "conn.error": "Server nicht erreichbar: {error}",
  "home.yourPart": "Ihr Teil",
  "home.itPart": "Teil der IT",
  "home.score": "Ihr Teil: {done} von {total} erledigt",
  "home.nextDeadline": "Nächste Frist: {what}, {when}",
  "home.noDeadline": "Keine Fristen: bei Ihnen ist nichts offen",
  "home.itIntro": "Darum kümmert sich die IT für Sie",
  "home.by": "durch {who}",
  "home.paused": "Erinnerungen pausiert bis {time}",
  "home.emptyYours": "Ergebnisse erscheinen hier nach der ersten Prüfung.",
  "home.open": "{title} öffnen",
  "status.pass": "Erledigt",
  "status.warn": "Braucht Sie",
  "status.fail": "Handlung nötig",
  "status.unknown": "Nicht prüfbar",
  "status.not_applicable": "Nicht zutreffend",
  "phase.notice": "Neu",
  "phase.reminder": "Erinnerung",
  "phase.imminent": "Bald fällig",
  "phase.overdue": "Überfällig",
  "item.back": "Zurück zur Übersicht",
  "item.whatsWrong": "Was nicht stimmt",
  "item.why": "Warum das wichtig ist",
  "item.how": "So beheben Sie es",
  "item.noSteps": "Hier ist für Sie nichts zu tun.",
  "item.openFix": "Einstellungen öffnen",
  "item.openLink": "Seite öffnen",
  "item.deadline": "Frist",
  "item.due": "{date} ({relative})",
  "item.deferralsLeft": "Sie können dies noch {n}-mal verschieben.",
  "item.noDeferrals": "Dies kann nicht mehr verschoben werden.",
  "item.later": "Später erinnern",
  "item.deferredUntil": "Verschoben bis {date}",
  "item.itsIt": "Darum kümmert sich die IT. Bleibt es rot, weiß Ihr Helpdesk Bescheid.",
  "item.notFound": "Für diese Prüfung gibt es noch kein Ergebnis.",
  "item.checkedAt": "Zuletzt geprüft {ago}",
  "phishing.title": "Phishing melden",
  "phishing.intro": "Eine Nachricht wirkt verdächtig? Schicken Sie sie an die IT. Sie erhalten eine Vorgangsnummer für Rückfragen.",
  "phishing.link": "Einen Link",
  "phishing.file": "Eine gespeicherte Nachricht (.eml)",
  "phishing.kind": "Was möchten Sie melden?",
  "phishing.url": "Link",
  "phishing.urlHint": "Fügen Sie den Link aus der Nachricht ein. Öffnen Sie ihn nicht.",
  "phishing.chooseFile": "Nachrichtendatei",
  "phishing.fileHint": "Speichern oder ziehen Sie die Nachricht in Ihrem Mailprogramm als .eml-Datei heraus.",
  "phishing.drop": "Die .eml-Datei hier ablegen oder auswählen",
  "phishing.note": "Hinweis für die IT (optional)",
  "phishing.notePlaceholder": "Woher kam sie? Haben Sie etwas angeklickt?",
  "phishing.send": "An die IT senden",
  "phishing.sending": "Wird gesendet…",
  "phishing.sent": "Gesendet. Ihre Vorgangsnummer ist {id}.",
  "phishing.status": "Von der IT empfangen {when}.",
  "phishing.needUrl": "Bitte zuerst den Link einfügen.",
  "phishing.needFile": "Bitte zuerst die Nachrichtendatei wählen.",
  "phishing.failed": "Nicht gesendet: {error}",
  "phishing.recent": "Ihre Meldungen",
  "phishing.none": "Von diesem Computer wurde noch nichts gemeldet.",
  "phishing.received": "Empfangen",
  "phishing.triage.new": "Empfangen",
  "phishing.triage.investigating": "Die IT prüft es",
  "phishing.triage.phishing": "Phishing bestätigt",
  "phishing.triage.spam": "Spam",
  "phishing.triage.safe": "Harmlos",
  "phishing.triage.unknown": "Von der IT aktualisiert",
  "phishing.reply": "Antwort der IT {when}:",
  "phishing.refresh": "Nach Antworten sehen",
  "phishing.refreshing": "Wird abgefragt…",
  "phishing.offline": "Die IT war gerade nicht erreichbar ({error}). Das ist der letzte bekannte Stand.",
  "itCanSee.title": "Was die IT sieht",
  "itCanSee.intro": "Dies ist der letzte Bericht, den dieser Computer an die IT gesendet hat, genau so wie gesendet. Sonst verlässt nichts diesen Computer.",
  "itCanSee.when": "Von der IT empfangen {when} ({date}).",
  "itCanSee.none": "Es wurde noch nichts an die IT gesendet.",
  "itCanSee.summary": "Kurz gesagt",
  "itCanSee.device": "Gerät: {host}, {os}",
  "itCanSee.results": "{n} Prüfergebnisse",
  "itCanSee.events": "{n} Ereignisse (Erinnerungen gezeigt, verschoben oder befolgt)",
  "itCanSee.raw": "Den Bericht genau so zeigen, wie er gesendet wurde",
  "itCanSee.resultsHeading": "Die Ergebnisse, die die IT erhalten hat",
  "history.title": "Verlauf",
  "history.none": "Bisher hat sich nichts geändert.",
  "history.was": "vorher: {from}",
  "history.phishing": "Phishing-Meldung gesendet ({id})",
  "settings.title": "Einstellungen",
  "settings.language": "Sprache",
  "settings.theme": "Darstellung",
  "settings.theme.system": "Wie das System",
  "settings.theme.light": "Hell",
  "settings.theme.dark": "Dunkel",
  "settings.autostart": "Tandem bei der Anmeldung starten",
  "settings.autostartHint": "Tandem prüft dann still im Hintergrund weiter.",
  "settings.managedByIt": "Von der IT verwaltet",
  "settings.about": "Über Tandem",
  "settings.version": "Version",
  "settings.server": "Server",
  "settings.device": "Geräte-ID",
  "settings.lastSync": "Letzte Synchronisierung",
  "settings.policy": "Richtlinie",
  "settings.policy.built_in": "Eingebaute Standardwerte",
  "settings.policy.server": "Von der IT (Version {v})",
  "settings.policy.managed": "Auf diesem Computer verwaltet",
  "settings.never": "Nie",
  "settings.notEnrolled": "Nicht angemeldet",
  "settings.pause": "Erinnerungen 1 Stunde pausieren",
  "settings.pausedUntil": "Erinnerungen pausiert bis {time}",
  "settings.helpdesk": "Helpdesk kontaktieren",
};

const fr: Catalogue = {
  "app.name": "Tandem",
  "nav.label": "Rubriques",
  "skip": "Aller au contenu",
  "nav.home": "Vue d’ensemble",
  "nav.phishing": "Signaler un hameçonnage",
  "nav.itCanSee": "Ce que voit l’IT",
  "nav.history": "Historique",
  "nav.settings": "Réglages",
  "loading": "Chargement…",
  "checkNow": "Vérifier maintenant",
  "checking": "Vérification…",
  "checkAgain": "Vérifier à nouveau",
  "checkFailed": "La vérification a échoué : {error}",
  "headline.none": "Aucune vérification n’a encore eu lieu",
  "headline.running": "Vérification de cet ordinateur…",
  "headline.allGood": "Tout va bien : rien ne vous attend",
  "headline.one": "1 point vous attend",
  "headline.many": "{n} points vous attendent",
  "conn.enrolled": "Connecté à {host}",
  "conn.lastSync": "dernière synchro {ago}",
  "conn.notSynced": "pas encore synchronisé",
  "conn.notEnrolled": "Non inscrit : rien n’est envoyé à l’IT",
  "conn.checked": "vérifié {ago}",
  "conn.error": "Serveur injoignable : {error}",
  "home.yourPart": "Votre part",
  "home.itPart": "La part de l’IT",
  "home.score": "Votre part : {done} sur {total} fait",
  "home.nextDeadline": "Prochaine échéance : {what}, {when}",
  "home.noDeadline": "Aucune échéance : rien ne reste ouvert de votre côté",
  "home.itIntro": "Ce dont l’IT s’occupe pour vous",
  "home.by": "par {who}",
  "home.paused": "Rappels en pause jusqu’à {time}",
  "home.emptyYours": "Les résultats apparaissent ici après la première vérification.",
  "home.open": "Ouvrir {title}",
  "status.pass": "Fait",
  "status.warn": "À faire",
  "status.fail": "Action requise",
  "status.unknown": "Vérification impossible",
  "status.not_applicable": "Sans objet",
  "phase.notice": "Nouveau",
  "phase.reminder": "Rappel",
  "phase.imminent": "Bientôt dû",
  "phase.overdue": "En retard",
  "item.back": "Retour à la vue d’ensemble",
  "item.whatsWrong": "Ce qui ne va pas",
  "item.why": "Pourquoi c’est important",
  "item.how": "Comment corriger",
  "item.noSteps": "Vous n’avez rien à faire ici.",
  "item.openFix": "Ouvrir les réglages",
  "item.openLink": "Ouvrir la page",
  "item.deadline": "Échéance",
  "item.due": "{date} ({relative})",
  "item.deferralsLeft": "Vous pouvez encore reporter {n} fois.",
  "item.noDeferrals": "Ce point ne peut plus être reporté.",
  "item.later": "Me le rappeler plus tard",
  "item.deferredUntil": "Reporté jusqu’au {date}",
  "item.itsIt": "L’IT s’en occupe. Si cela reste rouge, votre support est au courant.",
  "item.notFound": "Tandem n’a pas encore de résultat pour cette vérification.",
  "item.checkedAt": "Vérifié {ago}",
  "phishing.title": "Signaler un hameçonnage",
  "phishing.intro": "Un message vous paraît suspect ? Envoyez-le à l’IT. Vous recevrez un numéro de suivi à citer.",
  "phishing.link": "Un lien",
  "phishing.file": "Un message enregistré (.eml)",
  "phishing.kind": "Que signalez-vous ?",
  "phishing.url": "Lien",
  "phishing.urlHint": "Collez le lien du message. Ne l’ouvrez pas.",
  "phishing.chooseFile": "Fichier du message",
  "phishing.fileHint": "Dans votre messagerie, enregistrez ou faites glisser le message en fichier .eml.",
  "phishing.drop": "Déposez le fichier .eml ici, ou choisissez-le",
  "phishing.note": "Note pour l’IT (facultatif)",
  "phishing.notePlaceholder": "D’où vient-il ? Avez-vous cliqué sur quelque chose ?",
  "phishing.send": "Envoyer à l’IT",
  "phishing.sending": "Envoi…",
  "phishing.sent": "Envoyé. Votre numéro de suivi est {id}.",
  "phishing.status": "Reçu par l’IT {when}.",
  "phishing.needUrl": "Collez d’abord le lien.",
  "phishing.needFile": "Choisissez d’abord le fichier du message.",
  "phishing.failed": "Non envoyé : {error}",
  "phishing.recent": "Vos signalements",
  "phishing.none": "Rien n’a encore été signalé depuis cet ordinateur.",
  "phishing.received": "Reçu",
  "phishing.triage.new": "Reçu",
  "phishing.triage.investigating": "L’IT examine le message",
  "phishing.triage.phishing": "Hameçonnage confirmé",
  "phishing.triage.spam": "Spam",
  "phishing.triage.safe": "Sans danger",
  "phishing.triage.unknown": "Mis à jour par l’IT",
  "phishing.reply": "Réponse de l’IT {when} :",
  "phishing.refresh": "Vérifier les réponses",
  "phishing.refreshing": "Vérification…",
  "phishing.offline": "Impossible de joindre l’IT pour l’instant ({error}). Voici le dernier état connu.",
  "itCanSee.title": "Ce que voit l’IT",
  "itCanSee.intro": "Voici le dernier rapport envoyé à l’IT par cet ordinateur, tel quel. Rien d’autre ne quitte cet ordinateur.",
  "itCanSee.when": "Reçu par l’IT {when} ({date}).",
  "itCanSee.none": "Rien n’a encore été envoyé à l’IT.",
  "itCanSee.summary": "En bref",
  "itCanSee.device": "Appareil : {host}, {os}",
  "itCanSee.results": "{n} résultats de vérification",
  "itCanSee.events": "{n} événements (rappels affichés, reportés ou suivis)",
  "itCanSee.raw": "Afficher le rapport tel qu’il a été envoyé",
  "itCanSee.resultsHeading": "Les résultats reçus par l’IT",
  "history.title": "Historique",
  "history.none": "Rien n’a encore changé.",
  "history.was": "avant : {from}",
  "history.phishing": "Signalement envoyé ({id})",
  "settings.title": "Réglages",
  "settings.language": "Langue",
  "settings.theme": "Apparence",
  "settings.theme.system": "Comme le système",
  "settings.theme.light": "Clair",
  "settings.theme.dark": "Sombre",
  "settings.autostart": "Lancer Tandem à l’ouverture de session",
  "settings.autostartHint": "Tandem continue de vérifier discrètement en arrière-plan.",
  "settings.managedByIt": "Géré par l’IT",
  "settings.about": "À propos de Tandem",
  "settings.version": "Version",
  "settings.server": "Serveur",
  "settings.device": "Identifiant de l’appareil",
  "settings.lastSync": "Dernière synchro",
  "settings.policy": "Politique",
  "settings.policy.built_in": "Valeurs par défaut",
  "settings.policy.server": "Fournie par l’IT (version {v})",
  "settings.policy.managed": "Gérée sur cet ordinateur",
  "settings.never": "Jamais",
  "settings.notEnrolled": "Non inscrit",
  "settings.pause": "Mettre les rappels en pause 1 heure",
  "settings.pausedUntil": "Rappels en pause jusqu’à {time}",
  "settings.helpdesk": "Contacter le support",
};

/** Per check: its title and why it matters, in plain words. */
type CheckWords = Record<CheckId, { title: string; why: string }>;

const CHECKS: Record<Lang, CheckWords> = {
  en: {
    os_updates: { title: "Operating system updates", why: "Most attacks use holes that an update has already closed. Installing updates promptly is the single most effective thing you can do." },
    mfa: { title: "Multi-factor sign-in", why: "A stolen password alone is not enough to get into your account when a second step (an app, a key or a passkey) is needed." },
    password_age: { title: "Password age", why: "Old passwords have had years to leak in other sites' breaches. A fresh, unique one shuts that door." },
    password_manager: { title: "Password manager", why: "A password manager makes a different strong password for every site, so one leak never opens the others." },
    firewall: { title: "Firewall", why: "The firewall keeps other machines on the network from reaching services on this computer." },
    disk_encryption: { title: "Disk encryption", why: "If the laptop is lost or stolen, an encrypted disk keeps your files and the company's data unreadable." },
    screen_lock: { title: "Screen lock", why: "A screen that locks itself keeps someone walking past from using your open session." },
    antivirus: { title: "Antivirus", why: "Up-to-date malware protection catches known threats before they run." },
    auto_updates: { title: "Automatic updates", why: "Security fixes that install themselves protect you even in a busy week." },
    os_supported: { title: "Supported system version", why: "A system past its support date gets no more security fixes, however often you update." },
    software_sources: { title: "Trusted software sources", why: "Software from signed, trusted sources has not been tampered with on the way to you." },
  },
  de: {
    os_updates: { title: "Systemupdates", why: "Die meisten Angriffe nutzen Lücken, die ein Update längst geschlossen hat. Zügig installieren ist das Wirksamste, was Sie tun können." },
    mfa: { title: "Mehrstufige Anmeldung", why: "Ein gestohlenes Passwort allein reicht nicht, wenn ein zweiter Schritt (App, Schlüssel oder Passkey) nötig ist." },
    password_age: { title: "Passwortalter", why: "Alte Passwörter hatten Jahre Zeit, bei Datenlecks anderer Dienste abzufließen. Ein neues, einmaliges schließt diese Tür." },
    password_manager: { title: "Passwortmanager", why: "Ein Passwortmanager erzeugt für jede Seite ein anderes starkes Passwort, sodass ein Leck nie die anderen öffnet." },
    firewall: { title: "Firewall", why: "Die Firewall hält andere Rechner im Netz von den Diensten dieses Computers fern." },
    disk_encryption: { title: "Festplattenverschlüsselung", why: "Geht der Laptop verloren, bleiben Ihre Dateien und Firmendaten auf einer verschlüsselten Platte unlesbar." },
    screen_lock: { title: "Bildschirmsperre", why: "Ein Bildschirm, der sich selbst sperrt, verhindert, dass jemand im Vorbeigehen Ihre Sitzung nutzt." },
    antivirus: { title: "Virenschutz", why: "Aktueller Schutz vor Schadsoftware fängt bekannte Bedrohungen ab, bevor sie laufen." },
    auto_updates: { title: "Automatische Updates", why: "Sicherheitskorrekturen, die sich selbst installieren, schützen Sie auch in einer vollen Woche." },
    os_supported: { title: "Unterstützte Systemversion", why: "Ein System ohne Support bekommt keine Sicherheitskorrekturen mehr, egal wie oft Sie aktualisieren." },
    software_sources: { title: "Vertrauenswürdige Softwarequellen", why: "Software aus signierten, vertrauenswürdigen Quellen wurde auf dem Weg zu Ihnen nicht verändert." },
  },
  fr: {
    os_updates: { title: "Mises à jour du système", why: "La plupart des attaques exploitent des failles qu’une mise à jour a déjà corrigées. Les installer vite est le geste le plus efficace." },
    mfa: { title: "Connexion à plusieurs facteurs", why: "Un mot de passe volé ne suffit plus quand une deuxième étape (application, clé ou passkey) est exigée." },
    password_age: { title: "Âge du mot de passe", why: "Un vieux mot de passe a eu des années pour fuiter ailleurs. Un nouveau, unique, ferme cette porte." },
    password_manager: { title: "Gestionnaire de mots de passe", why: "Un gestionnaire crée un mot de passe fort différent pour chaque site : une fuite n’ouvre jamais les autres." },
    firewall: { title: "Pare-feu", why: "Le pare-feu empêche les autres machines du réseau d’atteindre les services de cet ordinateur." },
    disk_encryption: { title: "Chiffrement du disque", why: "Si l’ordinateur est perdu ou volé, un disque chiffré garde vos fichiers et les données de l’entreprise illisibles." },
    screen_lock: { title: "Verrouillage de l’écran", why: "Un écran qui se verrouille seul empêche un passant d’utiliser votre session ouverte." },
    antivirus: { title: "Antivirus", why: "Une protection à jour arrête les menaces connues avant qu’elles ne s’exécutent." },
    auto_updates: { title: "Mises à jour automatiques", why: "Les correctifs qui s’installent seuls vous protègent même pendant une semaine chargée." },
    os_supported: { title: "Version du système prise en charge", why: "Un système en fin de support ne reçoit plus de correctifs de sécurité, quelle que soit la fréquence des mises à jour." },
    software_sources: { title: "Sources de logiciels fiables", why: "Un logiciel issu de sources signées et fiables n’a pas été modifié en chemin." },
  },
};

const CATALOGUES = { en, de, fr } as const;
export type Lang = keyof typeof CATALOGUES;
export const LANGS: { code: Lang; name: string }[] = [
  { code: "en", name: "English" },
  { code: "de", name: "Deutsch" },
  { code: "fr", name: "Français" },
];

const STORAGE_KEY = "tandem.lang";

function isLang(code: string | null | undefined): code is Lang {
  return code === "en" || code === "de" || code === "fr";
}

declare global {
  interface Window {
    /** Put there by the shell when it creates the window (see src-tauri/src/window.rs). */
    __TANDEM_LANG__?: { lang: string; chosen: boolean };
  }
}

/** Whether the shell holds a choice of language (or there is no shell to tell). */
export function shellKnowsLang(): boolean {
  const shell = window.__TANDEM_LANG__;
  return shell === undefined || shell.chosen;
}

/** The language the shell speaks (tray, notifications) when the user chose it there. */
function shellChoice(): Lang | null {
  const shell = window.__TANDEM_LANG__;
  return shell?.chosen && isLang(shell.lang) ? shell.lang : null;
}

/**
 * The user's choice as the shell keeps it, else the choice saved in this window's storage
 * (from before the shell kept it), else the session's language as the shell or the browser
 * engine reads it, else English.
 */
export function initialLang(): Lang {
  const chosen = shellChoice();
  if (chosen) return chosen;
  try {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    if (isLang(saved)) return saved;
  } catch {
    // Storage can be unavailable; the system language still applies.
  }
  const shell = window.__TANDEM_LANG__?.lang;
  if (isLang(shell)) return shell;
  const system = (navigator.language || "en").slice(0, 2).toLowerCase();
  return isLang(system) ? system : "en";
}

export function saveLang(lang: Lang): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered across windows, but the switch still applies now.
  }
}

/** The words of one language, with the date and duration formats that go with it. */
export class Messages {
  constructor(readonly lang: Lang) {}

  t(key: MessageKey, params: Record<string, string | number> = {}): string {
    const template = CATALOGUES[this.lang][key] ?? en[key];
    return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
      name in params ? String(params[name]) : whole,
    );
  }

  checkTitle(id: CheckId): string {
    return CHECKS[this.lang][id].title;
  }

  checkWhy(id: CheckId): string {
    return CHECKS[this.lang][id].why;
  }

  status(status: Status): string {
    return this.t(`status.${status}`);
  }

  phase(phase: Phase): string {
    return this.t(`phase.${phase}`);
  }

  /** "3 minutes ago", "in 2 days". */
  relative(iso: string, now: Date = new Date()): string {
    const seconds = Math.round((Date.parse(iso) - now.getTime()) / 1000);
    const rtf = new Intl.RelativeTimeFormat(this.lang, { numeric: "auto" });
    const abs = Math.abs(seconds);
    if (abs < 60) return rtf.format(seconds, "second");
    if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
    return rtf.format(Math.round(seconds / 86400), "day");
  }

  /** A date and time in the user's time zone: "28 Nov 2026, 14:05". */
  dateTime(iso: string): string {
    return new Intl.DateTimeFormat(this.lang, { dateStyle: "medium", timeStyle: "short" }).format(
      new Date(iso),
    );
  }

  time(iso: string): string {
    return new Intl.DateTimeFormat(this.lang, { timeStyle: "short" }).format(new Date(iso));
  }
}
