//! The words of the tray menu and the notifications, in English, German and French: one
//! catalogue for everything the shell says itself, whose keys and words match the window's
//! (`ui/src/i18n.ts`) wherever both say the same thing; and which language to say it in.
//!
//! The language is the user's choice in the window's Settings, kept in the agent's data
//! directory so the shell knows it before any window exists; without a choice, the session's
//! locale; else English.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tandem_proto::CheckId;
use tokio::sync::watch;

/// A language Tandem speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    De,
    Fr,
}

/// Every language, English (the reference) first.
pub const LANGS: [Lang; 3] = [Lang::En, Lang::De, Lang::Fr];

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
        }
    }

    /// The language of a code or a POSIX locale name: `de`, `de-CH`, `de_DE.UTF-8`,
    /// `fr_FR@euro`. `None` for languages Tandem does not speak and for `C`/`POSIX`.
    pub fn from_code(code: &str) -> Option<Lang> {
        let lang = code
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        LANGS.into_iter().find(|l| l.code() == lang)
    }

    fn table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::En => EN,
            Lang::De => DE,
            Lang::Fr => FR,
        }
    }

    fn checks(self) -> &'static [(CheckId, &'static str, &'static str)] {
        match self {
            Lang::En => CHECKS_EN,
            Lang::De => CHECKS_DE,
            Lang::Fr => CHECKS_FR,
        }
    }

    /// The words for `key`; English when this language lacks them (a unit test makes sure
    /// none does), and the key itself when no language has it.
    pub fn t(self, key: &'static str) -> &'static str {
        let find = |table: &'static [(&'static str, &'static str)]| {
            table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        };
        find(self.table()).or_else(|| find(EN)).unwrap_or(key)
    }

    /// `t` with its `{name}` placeholders filled in.
    pub fn fill(self, key: &'static str, params: &[(&str, &dyn Display)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in params {
            text = text.replace(&format!("{{{name}}}"), &value.to_string());
        }
        text
    }

    pub fn check_title(self, id: CheckId) -> &'static str {
        self.checks()
            .iter()
            .find(|(c, _, _)| *c == id)
            .map(|(_, title, _)| *title)
            .unwrap_or_else(|| id.title())
    }

    /// Why a check matters, in plain words.
    pub fn check_why(self, id: CheckId) -> &'static str {
        self.checks()
            .iter()
            .find(|(c, _, _)| *c == id)
            .map(|(_, _, why)| *why)
            .unwrap_or_default()
    }
}

/// The language of the session's locale, read through `var` (the environment in
/// production): gettext's order, `LC_ALL`, then `LC_MESSAGES`, then `LANG`, where the first
/// one set names the locale; under a real locale `LANGUAGE`'s list of preferences comes
/// first. English when nothing names a language Tandem speaks.
///
/// # Platform behaviour
/// These variables are what Linux and the BSDs set for a desktop session. macOS and Windows
/// sessions rarely set them, so there the default is English until the user picks a
/// language in Settings.
pub fn from_locale(var: impl Fn(&str) -> Option<String>) -> Lang {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let locale = set("LC_ALL")
        .or_else(|| set("LC_MESSAGES"))
        .or_else(|| set("LANG"));
    let Some(locale) = locale else {
        return Lang::En;
    };
    if locale == "C" || locale == "POSIX" || locale.starts_with("C.") {
        return Lang::En;
    }
    let preferred = set("LANGUAGE")
        .into_iter()
        .flat_map(|list| {
            list.split(':')
                .filter_map(Lang::from_code)
                .collect::<Vec<_>>()
        })
        .next();
    preferred
        .or_else(|| Lang::from_code(&locale))
        .unwrap_or(Lang::En)
}

/// What the shell keeps of the user's choice, next to the agent's store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    language: Option<Lang>,
}

const SAVED_FILE: &str = "desktop.json";

/// The language in force and who chose it, shared by the tray, the reminders and the
/// window. Changes are published, so the tray menu follows a switch in Settings at once.
pub struct Language {
    file: PathBuf,
    chosen: watch::Sender<Option<Lang>>,
    locale: Lang,
}

impl Language {
    /// Reads the saved choice from `data_dir` and the locale from the environment.
    pub fn load(data_dir: &Path) -> Language {
        let file = data_dir.join(SAVED_FILE);
        let saved: Saved = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Language {
            file,
            chosen: watch::Sender::new(saved.language),
            locale: from_locale(|name| std::env::var(name).ok()),
        }
    }

    /// The language to speak now.
    pub fn current(&self) -> Lang {
        self.chosen.borrow().unwrap_or(self.locale)
    }

    /// The user's own choice, if they made one.
    pub fn chosen(&self) -> Option<Lang> {
        *self.chosen.borrow()
    }

    /// Follows changes of the user's choice.
    pub fn subscribe(&self) -> watch::Receiver<Option<Lang>> {
        self.chosen.subscribe()
    }

    /// Keeps the user's choice and tells everyone who follows it.
    pub fn choose(&self, lang: Lang) -> std::io::Result<()> {
        let saved = Saved {
            language: Some(lang),
        };
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Written aside and renamed, so a crash never leaves half a file to misread.
        let partial = self.file.with_extension("json.partial");
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &self.file)?;
        self.chosen.send_replace(Some(lang));
        Ok(())
    }
}

const EN: &[(&str, &str)] = &[
    // Shared with ui/src/i18n.ts: the same key has the same words there.
    ("checkNow", "Check now"),
    ("headline.none", "No checks have run yet"),
    ("headline.allGood", "All good: nothing needs you"),
    ("headline.one", "1 thing needs you"),
    ("headline.many", "{n} things need you"),
    ("status.pass", "Done"),
    ("status.warn", "Needs you"),
    ("status.fail", "Action required"),
    ("status.unknown", "Could not check"),
    ("status.not_applicable", "Not applicable"),
    ("phase.notice", "New"),
    ("phase.reminder", "Reminder"),
    ("phase.imminent", "Due soon"),
    ("phase.overdue", "Overdue"),
    ("settings.about", "About Tandem"),
    ("settings.pause", "Pause reminders for 1 hour"),
    ("settings.pausedUntil", "Reminders paused until {time}"),
    // The tray and notifications only.
    ("tray.notEnrolled", "Not enrolled with IT"),
    ("tray.summaryNotEnrolled", "{what} · not enrolled"),
    ("tray.summaryOffline", "{what} · offline"),
    ("tray.tooltip", "Tandem: {summary}"),
    ("tray.entryDue", "{title} ({due})"),
    ("tray.entryStatus", "{title}: {status}"),
    ("tray.open", "Open Tandem"),
    ("tray.reportPhishing", "Report phishing…"),
    ("tray.quit", "Quit"),
    ("due.overdue", "overdue"),
    ("due.today", "due today"),
    ("due.tomorrow", "due tomorrow"),
    ("due.days", "due in {n} days"),
    ("notify.phaseTitle", "{phase}: {title}"),
    ("notify.fixNow", "Fix now"),
    ("notify.later", "Later"),
    ("notify.noTray.title", "Tandem has no tray icon here"),
    ("notify.noTray.body", "This desktop shows no tray icons (on GNOME, the AppIndicator extension adds them). Tandem keeps working: reminders come as notifications, and launching Tandem again opens its window."),
];

const DE: &[(&str, &str)] = &[
    // Shared with ui/src/i18n.ts: the same key has the same words there.
    ("checkNow", "Jetzt prüfen"),
    ("headline.none", "Noch keine Prüfung gelaufen"),
    ("headline.allGood", "Alles in Ordnung: nichts zu tun"),
    ("headline.one", "1 Sache braucht Sie"),
    ("headline.many", "{n} Sachen brauchen Sie"),
    ("status.pass", "Erledigt"),
    ("status.warn", "Braucht Sie"),
    ("status.fail", "Handlung nötig"),
    ("status.unknown", "Nicht prüfbar"),
    ("status.not_applicable", "Nicht zutreffend"),
    ("phase.notice", "Neu"),
    ("phase.reminder", "Erinnerung"),
    ("phase.imminent", "Bald fällig"),
    ("phase.overdue", "Überfällig"),
    ("settings.about", "Über Tandem"),
    ("settings.pause", "Erinnerungen 1 Stunde pausieren"),
    ("settings.pausedUntil", "Erinnerungen pausiert bis {time}"),
    // The tray and notifications only.
    ("tray.notEnrolled", "Nicht bei der IT angemeldet"),
    ("tray.summaryNotEnrolled", "{what} · nicht angemeldet"),
    ("tray.summaryOffline", "{what} · offline"),
    ("tray.tooltip", "Tandem: {summary}"),
    ("tray.entryDue", "{title} ({due})"),
    ("tray.entryStatus", "{title}: {status}"),
    ("tray.open", "Tandem öffnen"),
    ("tray.reportPhishing", "Phishing melden…"),
    ("tray.quit", "Beenden"),
    ("due.overdue", "überfällig"),
    ("due.today", "heute fällig"),
    ("due.tomorrow", "morgen fällig"),
    ("due.days", "fällig in {n} Tagen"),
    ("notify.phaseTitle", "{phase}: {title}"),
    ("notify.fixNow", "Jetzt beheben"),
    ("notify.later", "Später"),
    ("notify.noTray.title", "Tandem hat hier kein Symbol in der Leiste"),
    ("notify.noTray.body", "Diese Arbeitsumgebung zeigt keine Leistensymbole (unter GNOME ergänzt sie die Erweiterung AppIndicator). Tandem arbeitet weiter: Erinnerungen kommen als Benachrichtigungen, und ein erneuter Start von Tandem öffnet sein Fenster."),
];

const FR: &[(&str, &str)] = &[
    // Shared with ui/src/i18n.ts: the same key has the same words there.
    ("checkNow", "Vérifier maintenant"),
    ("headline.none", "Aucune vérification n’a encore eu lieu"),
    ("headline.allGood", "Tout va bien : rien ne vous attend"),
    ("headline.one", "1 point vous attend"),
    ("headline.many", "{n} points vous attendent"),
    ("status.pass", "Fait"),
    ("status.warn", "À faire"),
    ("status.fail", "Action requise"),
    ("status.unknown", "Vérification impossible"),
    ("status.not_applicable", "Sans objet"),
    ("phase.notice", "Nouveau"),
    ("phase.reminder", "Rappel"),
    ("phase.imminent", "Bientôt dû"),
    ("phase.overdue", "En retard"),
    ("settings.about", "À propos de Tandem"),
    ("settings.pause", "Mettre les rappels en pause 1 heure"),
    ("settings.pausedUntil", "Rappels en pause jusqu’à {time}"),
    // The tray and notifications only.
    ("tray.notEnrolled", "Non inscrit auprès de l’IT"),
    ("tray.summaryNotEnrolled", "{what} · non inscrit"),
    ("tray.summaryOffline", "{what} · hors ligne"),
    ("tray.tooltip", "Tandem : {summary}"),
    ("tray.entryDue", "{title} ({due})"),
    ("tray.entryStatus", "{title} : {status}"),
    ("tray.open", "Ouvrir Tandem"),
    ("tray.reportPhishing", "Signaler un hameçonnage…"),
    ("tray.quit", "Quitter"),
    ("due.overdue", "en retard"),
    ("due.today", "à faire aujourd’hui"),
    ("due.tomorrow", "à faire demain"),
    ("due.days", "à faire dans {n} jours"),
    ("notify.phaseTitle", "{phase} : {title}"),
    ("notify.fixNow", "Corriger maintenant"),
    ("notify.later", "Plus tard"),
    ("notify.noTray.title", "Tandem n’a pas d’icône dans la barre ici"),
    ("notify.noTray.body", "Ce bureau n’affiche pas d’icônes de notification (sous GNOME, l’extension AppIndicator les ajoute). Tandem continue de fonctionner : les rappels arrivent en notifications, et relancer Tandem ouvre sa fenêtre."),
];

/// Check titles and why each matters, as in `CHECKS` of ui/src/i18n.ts.
const CHECKS_EN: &[(CheckId, &str, &str)] = &[
    (CheckId::OsUpdates, "Operating system updates", "Most attacks use holes that an update has already closed. Installing updates promptly is the single most effective thing you can do."),
    (CheckId::Mfa, "Multi-factor sign-in", "A stolen password alone is not enough to get into your account when a second step (an app, a key or a passkey) is needed."),
    (CheckId::PasswordAge, "Password age", "Old passwords have had years to leak in other sites' breaches. A fresh, unique one shuts that door."),
    (CheckId::PasswordManager, "Password manager", "A password manager makes a different strong password for every site, so one leak never opens the others."),
    (CheckId::Firewall, "Firewall", "The firewall keeps other machines on the network from reaching services on this computer."),
    (CheckId::DiskEncryption, "Disk encryption", "If the laptop is lost or stolen, an encrypted disk keeps your files and the company's data unreadable."),
    (CheckId::ScreenLock, "Screen lock", "A screen that locks itself keeps someone walking past from using your open session."),
    (CheckId::Antivirus, "Antivirus", "Up-to-date malware protection catches known threats before they run."),
    (CheckId::AutoUpdates, "Automatic updates", "Security fixes that install themselves protect you even in a busy week."),
    (CheckId::OsSupported, "Supported system version", "A system past its support date gets no more security fixes, however often you update."),
    (CheckId::SoftwareSources, "Trusted software sources", "Software from signed, trusted sources has not been tampered with on the way to you."),
];

/// Check titles and why each matters, as in `CHECKS` of ui/src/i18n.ts.
const CHECKS_DE: &[(CheckId, &str, &str)] = &[
    (CheckId::OsUpdates, "Systemupdates", "Die meisten Angriffe nutzen Lücken, die ein Update längst geschlossen hat. Zügig installieren ist das Wirksamste, was Sie tun können."),
    (CheckId::Mfa, "Mehrstufige Anmeldung", "Ein gestohlenes Passwort allein reicht nicht, wenn ein zweiter Schritt (App, Schlüssel oder Passkey) nötig ist."),
    (CheckId::PasswordAge, "Passwortalter", "Alte Passwörter hatten Jahre Zeit, bei Datenlecks anderer Dienste abzufließen. Ein neues, einmaliges schließt diese Tür."),
    (CheckId::PasswordManager, "Passwortmanager", "Ein Passwortmanager erzeugt für jede Seite ein anderes starkes Passwort, sodass ein Leck nie die anderen öffnet."),
    (CheckId::Firewall, "Firewall", "Die Firewall hält andere Rechner im Netz von den Diensten dieses Computers fern."),
    (CheckId::DiskEncryption, "Festplattenverschlüsselung", "Geht der Laptop verloren, bleiben Ihre Dateien und Firmendaten auf einer verschlüsselten Platte unlesbar."),
    (CheckId::ScreenLock, "Bildschirmsperre", "Ein Bildschirm, der sich selbst sperrt, verhindert, dass jemand im Vorbeigehen Ihre Sitzung nutzt."),
    (CheckId::Antivirus, "Virenschutz", "Aktueller Schutz vor Schadsoftware fängt bekannte Bedrohungen ab, bevor sie laufen."),
    (CheckId::AutoUpdates, "Automatische Updates", "Sicherheitskorrekturen, die sich selbst installieren, schützen Sie auch in einer vollen Woche."),
    (CheckId::OsSupported, "Unterstützte Systemversion", "Ein System ohne Support bekommt keine Sicherheitskorrekturen mehr, egal wie oft Sie aktualisieren."),
    (CheckId::SoftwareSources, "Vertrauenswürdige Softwarequellen", "Software aus signierten, vertrauenswürdigen Quellen wurde auf dem Weg zu Ihnen nicht verändert."),
];

/// Check titles and why each matters, as in `CHECKS` of ui/src/i18n.ts.
const CHECKS_FR: &[(CheckId, &str, &str)] = &[
    (CheckId::OsUpdates, "Mises à jour du système", "La plupart des attaques exploitent des failles qu’une mise à jour a déjà corrigées. Les installer vite est le geste le plus efficace."),
    (CheckId::Mfa, "Connexion à plusieurs facteurs", "Un mot de passe volé ne suffit plus quand une deuxième étape (application, clé ou passkey) est exigée."),
    (CheckId::PasswordAge, "Âge du mot de passe", "Un vieux mot de passe a eu des années pour fuiter ailleurs. Un nouveau, unique, ferme cette porte."),
    (CheckId::PasswordManager, "Gestionnaire de mots de passe", "Un gestionnaire crée un mot de passe fort différent pour chaque site : une fuite n’ouvre jamais les autres."),
    (CheckId::Firewall, "Pare-feu", "Le pare-feu empêche les autres machines du réseau d’atteindre les services de cet ordinateur."),
    (CheckId::DiskEncryption, "Chiffrement du disque", "Si l’ordinateur est perdu ou volé, un disque chiffré garde vos fichiers et les données de l’entreprise illisibles."),
    (CheckId::ScreenLock, "Verrouillage de l’écran", "Un écran qui se verrouille seul empêche un passant d’utiliser votre session ouverte."),
    (CheckId::Antivirus, "Antivirus", "Une protection à jour arrête les menaces connues avant qu’elles ne s’exécutent."),
    (CheckId::AutoUpdates, "Mises à jour automatiques", "Les correctifs qui s’installent seuls vous protègent même pendant une semaine chargée."),
    (CheckId::OsSupported, "Version du système prise en charge", "Un système en fin de support ne reçoit plus de correctifs de sécurité, quelle que soit la fréquence des mises à jour."),
    (CheckId::SoftwareSources, "Sources de logiciels fiables", "Un logiciel issu de sources signées et fiables n’a pas été modifié en chemin."),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn keys(lang: Lang) -> BTreeSet<&'static str> {
        lang.table().iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn every_key_exists_in_every_language_once() {
        for lang in LANGS {
            assert_eq!(
                keys(lang).len(),
                lang.table().len(),
                "{lang:?} repeats a key"
            );
            assert_eq!(keys(lang), keys(Lang::En), "{lang:?} differs from English");
            let checks: BTreeSet<_> = lang.checks().iter().map(|(c, _, _)| *c).collect();
            assert_eq!(checks.len(), 11, "{lang:?} lacks a check title");
            for (key, text) in lang.table() {
                assert!(!text.trim().is_empty(), "{lang:?} {key} is empty");
                // The same placeholders as the English words, so none is left unfilled.
                let holes = |s: &str| {
                    s.split('{')
                        .skip(1)
                        .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned()))
                        .collect::<BTreeSet<_>>()
                };
                assert_eq!(holes(text), holes(Lang::En.t(key)), "{lang:?} {key}");
            }
        }
    }

    /// The window's catalogue, read from the TypeScript source: `"key": "words",` lines of
    /// each language's table, and the `CHECKS` titles.
    fn window_catalogue() -> BTreeMap<(&'static str, String), String> {
        let source = include_str!("../../ui/src/i18n.ts");
        let mut words = BTreeMap::new();
        let starts = [
            ("en", "const en = {"),
            ("de", "const de: Catalogue = {"),
            ("fr", "const fr: Catalogue = {"),
        ];
        for (lang, start) in starts {
            let table = source.split_once(start).unwrap().1;
            let table = table.split_once("\n}").unwrap().0;
            for line in table.lines() {
                let line = line.trim().trim_end_matches(',');
                if let Some((key, text)) = line.split_once("\": \"") {
                    let key = key.trim_start_matches('"').to_owned();
                    words.insert((lang, key), text.trim_end_matches('"').to_owned());
                }
            }
        }
        let checks = source.split_once("const CHECKS").unwrap().1;
        for (lang, _) in starts {
            let table = checks.split_once(&format!("\n  {lang}: {{")).unwrap().1;
            let table = table.split_once("\n  },").unwrap().0;
            for line in table.lines() {
                if let Some((id, rest)) = line.trim().split_once(": { title: \"") {
                    let title = rest.split_once('"').unwrap().0;
                    words.insert((lang, format!("check.{id}")), title.to_owned());
                }
            }
        }
        words
    }

    #[test]
    fn words_shared_with_the_window_are_the_same_words() {
        let window = window_catalogue();
        let mut shared = 0;
        for lang in LANGS {
            for (key, text) in lang.table() {
                if let Some(theirs) = window.get(&(lang.code(), key.to_string())) {
                    assert_eq!(text, theirs, "{lang:?} {key} differs from ui/src/i18n.ts");
                    shared += 1;
                }
            }
            for (id, title, _) in lang.checks() {
                let theirs = &window[&(lang.code(), format!("check.{id}"))];
                assert_eq!(title, theirs, "{lang:?} title of {id}");
            }
        }
        // The summary line, statuses, phases and the pause entry at least.
        assert!(
            shared >= 3 * 15,
            "only {shared} words shared: did the parsing break?"
        );
    }

    #[test]
    fn placeholders_are_filled_and_missing_words_fall_back_to_english() {
        assert_eq!(
            Lang::De.fill("headline.many", &[("n", &3)]),
            "3 Sachen brauchen Sie"
        );
        assert_eq!(Lang::Fr.t("notify.later"), "Plus tard");
        assert_eq!(Lang::De.t("no.such.key"), "no.such.key");
        assert_eq!(
            Lang::De.check_title(CheckId::ScreenLock),
            "Bildschirmsperre"
        );
    }

    #[test]
    fn the_locale_picks_the_language() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(from_locale(env(&[])), Lang::En);
        assert_eq!(from_locale(env(&[("LANG", "de_DE.UTF-8")])), Lang::De);
        assert_eq!(
            from_locale(env(&[("LANG", "de_DE.UTF-8"), ("LC_MESSAGES", "fr_CA")])),
            Lang::Fr
        );
        assert_eq!(
            from_locale(env(&[("LANG", "de_DE.UTF-8"), ("LC_ALL", "C.UTF-8")])),
            Lang::En
        );
        assert_eq!(
            from_locale(env(&[("LANG", "en_GB.UTF-8"), ("LANGUAGE", "nl:fr:en")])),
            Lang::Fr
        );
        assert_eq!(from_locale(env(&[("LANG", "ja_JP.UTF-8")])), Lang::En);
    }

    #[test]
    fn a_choice_is_kept_across_restarts_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("tandem");
        let language = Language::load(&dir);
        assert_eq!(language.chosen(), None);
        let mut follower = language.subscribe();
        language.choose(Lang::Fr).unwrap();
        assert!(follower.has_changed().unwrap());
        assert_eq!(*follower.borrow_and_update(), Some(Lang::Fr));
        assert_eq!(Language::load(&dir).current(), Lang::Fr);
    }
}
