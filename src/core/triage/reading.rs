//! The reading: what the customer's own sentences state about the
//! problem, in any of the seven shipped languages, before any policy's
//! words. Each sentence is read for an effect (stopped, degraded, wrong,
//! cosmetic, a question, a suggestion, data lost) with its scope and
//! intensity in the same sentence ("all", "extremely"); the mail as a
//! whole for a mitigation (a workaround, what still works, not blocking,
//! only a test system) and an explicit "no impact". A negated effect
//! ("nothing is failing") is no effect, a negated mitigation ("no
//! workaround") is none. The strongest sentence, lowered by what the
//! mail says mitigates it, gives one [`Severity`], which the config maps
//! to its own levels (`[triage.reading]`), with the sentences that
//! decided as the reason.
//!
//! Pure and built in: the lexicon is data of this file, matched with the
//! same folded-phrase matcher as the config's rules.

use std::collections::HashMap;

use super::normalize::Token;
use super::phrases::{Entry, Match, Matcher, NEGATIONS, Phrase};

/// How bad what the customer describes is, from nothing to a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A question, a cosmetic problem, or "no impact" said outright.
    Cosmetic,
    /// Something wrong or slower, limited, or a stop that is worked around.
    Minor,
    /// Something stopped, or degraded for everyone.
    Major,
    /// Stopped with a wide scope (all, nobody, most, half of), or data
    /// lost or corrupted.
    Outage,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Outage,
        Severity::Major,
        Severity::Minor,
        Severity::Cosmetic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Outage => "outage",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Cosmetic => "cosmetic",
        }
    }

    fn down(self) -> Severity {
        match self {
            Severity::Outage => Severity::Major,
            Severity::Major | Severity::Minor => Severity::Minor,
            Severity::Cosmetic => Severity::Cosmetic,
        }
    }
}

/// What one phrase of the lexicon says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Down,
    Degraded,
    Wrong,
    Cosmetic,
    Question,
    Wide,
    Mitigated,
    NoImpact,
    Data,
    Intense,
    Wish,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Down,
        Kind::Degraded,
        Kind::Wrong,
        Kind::Cosmetic,
        Kind::Question,
        Kind::Wide,
        Kind::Mitigated,
        Kind::NoImpact,
        Kind::Data,
        Kind::Intense,
        Kind::Wish,
    ];

    /// Effects compete for their words: the longest phrase is read
    /// ("couldn't find" is a question, not the stop of "couldn't").
    fn is_effect(self) -> bool {
        matches!(
            self,
            Kind::Down
                | Kind::Degraded
                | Kind::Wrong
                | Kind::Cosmetic
                | Kind::Question
                | Kind::Wish
                | Kind::Data
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Down => "a stop",
            Kind::Degraded => "a slowdown",
            Kind::Wrong => "something wrong",
            Kind::Cosmetic => "a cosmetic problem",
            Kind::Question => "a question",
            Kind::Wide => "a wide scope",
            Kind::Mitigated => "a mitigation",
            Kind::NoImpact => "no impact",
            Kind::Data => "data lost or exposed",
            Kind::Intense => "an intensifier",
            Kind::Wish => "a suggestion",
        }
    }
}

type Lexicon = &'static [(&'static str, &'static [&'static str])];

/// Something stopped: it does not work, cannot be reached or used.
const DOWN: Lexicon = &[
    (
        "any",
        &["down", "outage", "crash*", "offline", "ko", "timeout*"],
    ),
    (
        "en",
        &[
            "not working",
            "doesn t work",
            "does not work",
            "don t work",
            "do not work",
            "isn t working",
            "aren t working",
            "stopped",
            "stop working",
            "no longer work*",
            "no longer start*",
            "no longer possible",
            "no longer receiv*",
            "no longer respond*",
            "cannot",
            "can t",
            "couldn t",
            "unable to",
            "unavailable",
            "unreachable",
            "inaccessible",
            "fail*",
            "skipped",
            "nothing works",
            "nothing is working",
            "nobody can",
            "no one can",
            "not received",
            "not sent",
            "not delivered",
            "aren t sent",
            "aren t arriving",
            "not arriving",
            "no longer arriv*",
            "won t start",
            "won t load",
            "hangs",
            "frozen",
            "broken",
            "blocked",
            "lost access",
            "no access",
            "refused",
            "rejected",
            "stuck",
        ],
    ),
    (
        "fr",
        &[
            "ne fonctionne plus",
            "ne fonctionne pas",
            "ne fonctionnent plus",
            "ne fonctionnent pas",
            "ne marche plus",
            "ne marche pas",
            "ne marchent plus",
            "en panne",
            "panne",
            "hors service",
            "hors ligne",
            "plus accessible*",
            "plus acces",
            "inaccessible*",
            "indisponible*",
            "impossible",
            "arret*",
            "ne part* plus",
            "ne sont plus",
            "n est plus",
            "ne recev* plus",
            "ne recoi* plus",
            "ne demarre* plus",
            "ne demarre* pas",
            "ne repond* plus",
            "ne repond* pas",
            "ne passe* plus",
            "ne passe* pas",
            "ne peu* plus",
            "ne peu* pas",
            "n arriv* plus",
            "ne se lance* plus",
            "plus aucun*",
            "personne ne peut",
            "personne ne peu* plus",
            "plante*",
            "echou*",
            "echec*",
            "bloque*",
            "coupe*",
            "coupure*",
            "refus*",
            "rejet*",
        ],
    ),
    (
        "de",
        &[
            "funktioniert nicht",
            "funktionieren nicht",
            "geht nicht",
            "gehen nicht",
            "ausgefallen",
            "ausfall*",
            "nicht erreichbar",
            "nicht verfugbar",
            "nicht mehr erreichbar",
            "nicht mehr moglich",
            "funktioniert nicht mehr",
            "fehlgeschlagen",
            "schlagt fehl",
            "schlagen fehl",
            "absturz*",
            "abgesturzt",
            "kann nicht",
            "konnen nicht",
            "keine verbindung",
            "niemand kann",
            "kein zugriff",
            "blockiert",
            "gestoppt",
        ],
    ),
    (
        "es",
        &[
            "no funciona",
            "no funcionan",
            "dejo de funcionar",
            "ha dejado de",
            "han dejado de",
            "caido",
            "caida",
            "cayo",
            "no podemos",
            "nadie puede",
            "no puedo",
            "no se puede",
            "no es posible",
            "fuera de servicio",
            "no esta disponible",
            "no disponible",
            "inaccesible",
            "no responde",
            "falla*",
            "fallo",
            "bloquead*",
            "detenid*",
            "parado",
        ],
    ),
    (
        "it",
        &[
            "non funziona",
            "non funzionano",
            "non riusciamo",
            "nessuno riesce",
            "nessuno puo",
            "non riesco",
            "non e possibile",
            "non e piu",
            "non sono piu",
            "fuori servizio",
            "irraggiungibil*",
            "non raggiungibil*",
            "non disponibil*",
            "non risponde",
            "fallit*",
            "interrott*",
            "bloccat*",
        ],
    ),
    (
        "nl",
        &[
            "werkt niet",
            "werken niet",
            "werkt niet meer",
            "ligt plat",
            "liggen plat",
            "niet bereikbaar",
            "niet beschikbaar",
            "storing",
            "uitval",
            "uitgevallen",
            "kunnen niet",
            "niemand kan",
            "kan niet",
            "mislukt",
            "reageert niet",
            "geblokkeerd",
            "gestopt",
        ],
    ),
    (
        "pt",
        &[
            "nao funciona",
            "nao funcionam",
            "parou de funcionar",
            "pararam de",
            "fora do ar",
            "indisponivel",
            "nao conseguimos",
            "ninguem consegue",
            "nao consigo",
            "nao e possivel",
            "falha*",
            "falhou",
            "caiu",
            "inacessivel",
            "nao responde",
            "bloquead*",
            "parado",
        ],
    ),
];

/// Slower, intermittent, late.
const DEGRADED: Lexicon = &[
    ("any", &["latenc*"]),
    (
        "en",
        &[
            "slow*",
            "lag",
            "lagging",
            "intermittent*",
            "sometimes",
            "from time to time",
            "occasionally",
            "delay*",
            "getting worse",
            "degraded",
            "very long",
            "takes ages",
            "time out",
            "timing out",
            "drops",
            "dropping",
            "unstable",
            "randomly",
        ],
    ),
    (
        "fr",
        &[
            "lent*",
            "ralenti*",
            "lenteur*",
            "intermittent*",
            "parfois",
            "de temps en temps",
            "par moments",
            "aleatoire*",
            "en retard",
            "de retard",
            "retards",
            "retarde*",
            "degrad*",
            "instable*",
            "tres long*",
            "de plus en plus",
            "temps de reponse",
            "latence*",
            "en boucle",
            "redemarre*",
        ],
    ),
    (
        "de",
        &[
            "langsam*",
            "verzogert*",
            "verzogerung*",
            "manchmal",
            "sporadisch*",
            "zeitweise",
            "instabil*",
        ],
    ),
    (
        "es",
        &[
            "lent*",
            "a veces",
            "intermitent*",
            "retraso*",
            "degradad*",
            "inestable*",
        ],
    ),
    (
        "it",
        &[
            "lent*",
            "a volte",
            "intermittent*",
            "ritard*",
            "rallentat*",
            "instabil*",
        ],
    ),
    (
        "nl",
        &[
            "traag",
            "trager",
            "soms",
            "vertraag*",
            "vertraging*",
            "instabiel",
        ],
    ),
    (
        "pt",
        &[
            "lent*",
            "as vezes",
            "intermitent*",
            "atraso*",
            "degradad*",
            "instavel",
        ],
    ),
];

/// Wrong results or error messages.
const WRONG: Lexicon = &[
    (
        "any",
        &["bug*", "exception*", "403", "404", "500", "502", "503"],
    ),
    (
        "en",
        &[
            "error*",
            "wrong",
            "incorrect*",
            "inconsistent*",
            "mismatch*",
            "missing",
            "warning*",
            "alert*",
        ],
    ),
    (
        "fr",
        &[
            "erreur*",
            "incorrect*",
            "faux",
            "fausse*",
            "incoheren*",
            "anomalie*",
            "manquant*",
            "probleme*",
            "souci*",
            "alerte*",
            "dysfonctionnement*",
        ],
    ),
    (
        "de",
        &[
            "fehler*",
            "falsch*",
            "fehlerhaft*",
            "problem*",
            "warnung*",
            "alarm*",
        ],
    ),
    (
        "es",
        &["error*", "incorrect*", "erroneo*", "problema*", "alerta*"],
    ),
    (
        "it",
        &[
            "errore",
            "errori",
            "sbagliat*",
            "errat*",
            "problema",
            "anomalia*",
            "allarm*",
        ],
    ),
    (
        "nl",
        &[
            "fout",
            "fouten",
            "foutmelding*",
            "onjuist*",
            "probleem",
            "alarm*",
        ],
    ),
    (
        "pt",
        &[
            "erro",
            "erros",
            "incorret*",
            "errad*",
            "problema*",
            "alerta*",
        ],
    ),
];

/// Looks, labels, texts: nothing stops.
const COSMETIC: Lexicon = &[
    (
        "en",
        &[
            "typo*",
            "spelling",
            "cosmetic*",
            "label*",
            "colour*",
            "color*",
            "alignment",
            "misaligned",
            "icon*",
            "logo",
            "layout",
            "font",
            "wording",
            "translation",
            "shows as",
            "shown as",
        ],
    ),
    (
        "fr",
        &[
            "faute de frappe",
            "faute d orthographe",
            "coquille",
            "cosmetique*",
            "affichage",
            "libelle*",
            "couleur*",
            "alignement",
            "icone*",
            "logo",
            "mise en page",
            "traduction",
            "pastille",
        ],
    ),
    (
        "de",
        &[
            "tippfehler",
            "rechtschreib*",
            "anzeige",
            "darstellung",
            "ubersetzung",
            "farbe",
        ],
    ),
    (
        "es",
        &[
            "errata",
            "error tipografico",
            "visualizacion",
            "etiqueta*",
            "traduccion",
            "color",
        ],
    ),
    (
        "it",
        &[
            "refuso",
            "visualizzazione",
            "etichetta*",
            "traduzione",
            "colore",
        ],
    ),
    (
        "nl",
        &[
            "typfout",
            "tikfout",
            "weergave",
            "vertaling",
            "kleur",
            "label*",
        ],
    ),
    (
        "pt",
        &["erro de digitacao", "exibicao", "rotulo*", "traducao"],
    ),
];

/// Asking how, whether, or for information.
const QUESTION: Lexicon = &[
    (
        "en",
        &[
            "how do",
            "how can",
            "can t find",
            "couldn t find",
            "cannot find",
            "can t see how",
            "where is",
            "where can",
            "how to",
            "how should",
            "is it possible",
            "would it be possible",
            "is there a way",
            "question*",
            "could you explain",
            "can you explain",
            "information about",
            "information on",
            "wondering",
            "advice",
            "clarif*",
        ],
    ),
    (
        "fr",
        &[
            "comment faire",
            "ne trouve pas",
            "ne trouvons pas",
            "trouve pas",
            "ou se trouve",
            "comment peut on",
            "comment pouvons nous",
            "est il possible",
            "serait il possible",
            "est ce possible",
            "question*",
            "savoir si",
            "savoir comment",
            "renseignement*",
            "precision*",
            "conseil*",
        ],
    ),
    (
        "de",
        &[
            "wie kann",
            "wie konnen",
            "ist es moglich",
            "frage*",
            "gibt es eine moglichkeit",
        ],
    ),
    (
        "es",
        &[
            "como puedo",
            "como podemos",
            "es posible",
            "pregunta*",
            "consulta*",
        ],
    ),
    (
        "it",
        &[
            "come posso",
            "come possiamo",
            "e possibile",
            "domanda*",
            "chiarimento*",
        ],
    ),
    (
        "nl",
        &[
            "hoe kan",
            "hoe kunnen",
            "is het mogelijk",
            "vraag",
            "vragen",
        ],
    ),
    (
        "pt",
        &[
            "como posso",
            "como podemos",
            "e possivel",
            "pergunta*",
            "duvida*",
        ],
    ),
];

/// Everyone, everything, every site: scope that makes a stop an outage.
const WIDE: Lexicon = &[
    (
        "en",
        &[
            "all",
            "every",
            "everyone",
            "everybody",
            "nobody",
            "no one",
            "entire",
            "whole",
            "completely",
            "totally",
            "none of",
            "any of our",
            "most of",
            "half of",
            "all of",
        ],
    ),
    (
        "fr",
        &[
            "tous",
            "toutes",
            "tout le monde",
            "personne ne",
            "personne n",
            "aucun utilisateur",
            "aucun de nos",
            "sans exception",
            "l ensemble",
            "totalement",
            "completement",
            "entierement",
            "la moitie",
            "la plupart",
        ],
    ),
    (
        "de",
        &[
            "alle",
            "niemand",
            "komplett",
            "vollstandig",
            "gesamte*",
            "keiner",
        ],
    ),
    (
        "es",
        &[
            "todos",
            "todas",
            "nadie",
            "ninguno",
            "completamente",
            "toda la",
            "todo el",
        ],
    ),
    (
        "it",
        &[
            "tutti",
            "tutte",
            "nessuno",
            "completamente",
            "l intero",
            "l intera",
        ],
    ),
    (
        "nl",
        &[
            "alle",
            "iedereen",
            "niemand",
            "volledig",
            "helemaal",
            "geen enkele",
        ],
    ),
    (
        "pt",
        &[
            "todos",
            "todas",
            "ninguem",
            "nenhum",
            "completamente",
            "toda a",
            "todo o",
        ],
    ),
];

/// The customer says it is worked around, limited, or can wait.
const MITIGATED: Lexicon = &[
    (
        "en",
        &[
            "workaround",
            "work around",
            "worked around",
            "still work*",
            "still goes out",
            "still going out",
            "still goes through",
            "everything else",
            "otherwise fine",
            "otherwise works",
            "works fine",
            "works normally",
            "work normally",
            "running normally",
            "is fine",
            "are fine",
            "not blocking",
            "not urgent",
            "not affected",
            "no rush",
            "no hurry",
            "can wait",
            "when you have time",
            "for your information",
            "fyi",
            "just to let you know",
            "test environment",
            "test system",
            "staging",
            "sandbox",
            "dev environment",
            "development environment",
            "only on test",
            "not production",
            "not in production",
        ],
    ),
    (
        "fr",
        &[
            "contournement",
            "contourner",
            "palliatif",
            "fonctionne normalement",
            "fonctionnent normalement",
            "fonctionne parfaitement",
            "fonctionne bien",
            "fonctionnent bien",
            "tourn* normalement",
            "fonctionner normalement",
            "tourne parfaitement",
            "tout fonctionne",
            "tout le reste",
            "le reste fonctionne",
            "pas bloquant",
            "non bloquant",
            "n est pas bloquant",
            "pas urgent",
            "pas concerne*",
            "rien ne presse",
            "peut attendre",
            "quand vous aurez le temps",
            "pour information",
            "pour info",
            "environnement de test*",
            "environnement de dev*",
            "environnement de recette",
            "recette",
            "preprod*",
            "pre production",
            "sandbox",
            "sans probleme",
        ],
    ),
    (
        "de",
        &[
            "workaround",
            "umgehung*",
            "funktioniert normal",
            "lauft normal",
            "nicht dringend",
            "keine eile",
            "testumgebung",
            "testsystem",
            "alles andere",
            "zur info*",
        ],
    ),
    (
        "es",
        &[
            "solucion alternativa",
            "funciona con normalidad",
            "funciona bien",
            "funcionan bien",
            "no es urgente",
            "sin prisa",
            "entorno de pruebas",
            "todo lo demas",
        ],
    ),
    (
        "it",
        &[
            "soluzione alternativa",
            "funziona regolarmente",
            "funziona normalmente",
            "funzionano regolarmente",
            "non e urgente",
            "nessuna fretta",
            "ambiente di test",
            "tutto il resto",
        ],
    ),
    (
        "nl",
        &[
            "workaround",
            "tijdelijke oplossing",
            "werkt normaal",
            "werkt wel",
            "niet dringend",
            "geen haast",
            "testomgeving",
            "de rest werkt",
        ],
    ),
    (
        "pt",
        &[
            "solucao alternativa",
            "funciona normalmente",
            "funcionam normalmente",
            "nao e urgente",
            "sem pressa",
            "ambiente de teste*",
            "todo o resto",
        ],
    ),
];

/// "No impact" said outright.
const NO_IMPACT: Lexicon = &[
    (
        "en",
        &[
            "no impact",
            "no real impact",
            "without impact",
            "zero impact",
            "not impacted",
            "purely cosmetic",
            "just cosmetic",
            "only cosmetic",
        ],
    ),
    (
        "fr",
        &[
            "aucun impact",
            "pas d impact",
            "sans impact",
            "aucune incidence",
            "pas d incidence",
            "sans incidence",
            "aucune consequence",
            "pas impacte*",
            "purement cosmetique",
            "juste l affichage",
            "uniquement l affichage",
        ],
    ),
    ("de", &["keine auswirkung*", "ohne auswirkung*"]),
    ("es", &["sin impacto", "ningun impacto"]),
    ("it", &["nessun impatto", "senza impatto"]),
    ("nl", &["geen impact", "geen gevolgen"]),
    ("pt", &["sem impacto", "nenhum impacto"]),
];

/// Data lost, corrupted or exposed.
const DATA: Lexicon = &[
    (
        "en",
        &[
            "data loss",
            "lost data",
            "lost our data",
            "corrupt*",
            "breach*",
            "leak*",
            "ransomware",
            "other customers data",
            "someone else s data",
        ],
    ),
    (
        "fr",
        &[
            "perte de donnees",
            "donnees perdues",
            "donnees corrompues",
            "corrompu*",
            "fuite*",
            "rancongiciel",
            "donnees d un autre",
            "donnees d autres",
        ],
    ),
    (
        "de",
        &["datenverlust", "beschadigt*", "korrupt*", "datenleck"],
    ),
    ("es", &["perdida de datos", "datos perdidos", "corrupt*"]),
    ("it", &["perdita di dati", "dati persi", "corrott*"]),
    ("nl", &["dataverlies", "gegevensverlies", "corrupt*"]),
    ("pt", &["perda de dados", "dados perdidos", "corromp*"]),
];

/// An idea or a wish for the product.
const WISH: Lexicon = &[
    (
        "en",
        &[
            "idea",
            "suggestion*",
            "would be nice",
            "would be great",
            "would be helpful",
            "would be useful",
            "feature request",
            "it would help",
            "could you add",
            "improvement",
            "enhancement",
        ],
    ),
    (
        "fr",
        &[
            "idee",
            "suggestion*",
            "serait bien",
            "serait pratique",
            "serait utile",
            "serait appreciable",
            "amelioration*",
            "evolution*",
        ],
    ),
    (
        "de",
        &[
            "idee",
            "vorschlag",
            "anregung",
            "ware schon",
            "ware hilfreich",
            "verbesserung*",
        ],
    ),
    (
        "es",
        &[
            "idea",
            "sugerencia*",
            "seria util",
            "estaria bien",
            "mejora*",
        ],
    ),
    (
        "it",
        &[
            "idea",
            "suggeriment*",
            "sarebbe utile",
            "sarebbe bello",
            "miglioramento",
        ],
    ),
    (
        "nl",
        &[
            "idee",
            "suggestie*",
            "zou handig",
            "zou fijn",
            "verbetering*",
        ],
    ),
    (
        "pt",
        &[
            "ideia",
            "sugestao",
            "sugestoes",
            "seria util",
            "seria bom",
            "melhoria*",
        ],
    ),
];

/// Words that make a slowdown severe ("extremely slow", "très ralenti").
const INTENSE: Lexicon = &[
    (
        "en",
        &[
            "very slow",
            "very long",
            "extremely",
            "severely",
            "badly",
            "unusable",
            "much slower",
            "times slower",
            "times as long",
            "times longer",
            "hours",
        ],
    ),
    (
        "fr",
        &[
            "tres lent*",
            "tres long*",
            "extremement",
            "hautement",
            "fortement",
            "considerablement",
            "inutilisable*",
            "fois plus",
            "heures",
        ],
    ),
    (
        "de",
        &["sehr langsam", "extrem", "massiv", "unbenutzbar", "stunden"],
    ),
    (
        "es",
        &["muy lent*", "extremadamente", "inutilizable", "horas"],
    ),
    (
        "it",
        &["molto lent*", "estremamente", "inutilizzabile", "ore"],
    ),
    (
        "nl",
        &["erg traag", "zeer traag", "extreem", "onbruikbaar", "uren"],
    ),
    (
        "pt",
        &["muito lent*", "extremamente", "inutilizavel", "horas"],
    ),
];

fn lexicon(kind: Kind) -> Lexicon {
    match kind {
        Kind::Down => DOWN,
        Kind::Degraded => DEGRADED,
        Kind::Wrong => WRONG,
        Kind::Cosmetic => COSMETIC,
        Kind::Question => QUESTION,
        Kind::Wide => WIDE,
        Kind::Mitigated => MITIGATED,
        Kind::NoImpact => NO_IMPACT,
        Kind::Data => DATA,
        Kind::Intense => INTENSE,
        Kind::Wish => WISH,
    }
}

/// The lexicon compiled once per checked config.
#[derive(Debug, Clone)]
pub struct Reader {
    /// One matcher per language, each with the "any" phrases: a mail is
    /// matched against its own language only.
    by_lang: HashMap<String, Matcher>,
    /// Matches of a language the lexicon lacks: the "any" phrases.
    any: Matcher,
    kinds: Vec<Kind>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    pub fn new() -> Reader {
        let mut entries = Vec::new();
        let mut kinds = Vec::new();
        for (k, kind) in Kind::ALL.iter().enumerate() {
            for (lang, phrases) in lexicon(*kind) {
                for p in *phrases {
                    // The lexicon is this file's data; a phrase that does not
                    // compile is a bug the unit tests catch.
                    let Ok(phrase) = Phrase::compile(p) else {
                        continue;
                    };
                    entries.push(Entry {
                        rule: kinds.len(),
                        field: if kind.is_effect() { 0 } else { k + 1 },
                        lang: (*lang).to_string(),
                        phrase,
                    });
                    kinds.push(*kind);
                }
            }
        }
        let negations: HashMap<String, Vec<String>> = NEGATIONS
            .iter()
            .map(|(l, ws)| ((*l).to_string(), ws.iter().map(|w| w.to_string()).collect()))
            .collect();
        let langs: std::collections::BTreeSet<&str> = entries
            .iter()
            .map(|e| e.lang.as_str())
            .filter(|l| *l != "any")
            .collect();
        let of = |lang: &str| {
            let mine = entries
                .iter()
                .filter(|e| e.lang == lang || e.lang == "any")
                .cloned()
                .collect();
            Matcher::new(mine, negations.clone())
        };
        Reader {
            by_lang: langs.iter().map(|l| (l.to_string(), of(l))).collect(),
            any: of("any"),
            kinds,
        }
    }

    /// Read `tokens` (the customer's own text) in language `lang`.
    pub fn read(&self, tokens: &[Token], lang: &str) -> Reading {
        self.read_matches(tokens, &self.matches(tokens, lang))
    }

    fn matches(&self, tokens: &[Token], lang: &str) -> Vec<(Kind, Match)> {
        let matcher = self.by_lang.get(lang).unwrap_or(&self.any);
        matcher
            .find(tokens)
            .into_iter()
            .filter_map(|m| {
                let e = matcher.entry(m.entry)?;
                Some((*self.kinds.get(e.rule)?, m))
            })
            .collect()
    }

    fn read_matches<'a>(&self, tokens: &[Token], matches: &'a [(Kind, Match)]) -> Reading {
        let said = |m: &Match| m.negated_by.is_none();
        let sentence_of = |m: &Match| tokens.get(m.start).map_or(0, |t| t.sentence);
        // A scope word is taken as said unless a negation stands right
        // before it ("not all users"): in "does not work for all" the
        // negation is the verb's.
        let wide_said = |m: &Match| {
            m.negated_by.is_none()
                || m.start
                    .checked_sub(1)
                    .and_then(|i| tokens.get(i))
                    .is_none_or(|t| m.negated_by.as_deref() != Some(t.word.as_str()))
        };
        // Sentences with a scope or an intensifier, collected once (a
        // hostile text of 10,000 matches costs one pass, not 10,000).
        let mut wide_sentences = std::collections::HashSet::new();
        let mut intense_sentences = std::collections::HashSet::new();
        for (k, m) in matches {
            match k {
                Kind::Wide if wide_said(m) => {
                    wide_sentences.insert(sentence_of(m));
                }
                Kind::Intense if wide_said(m) => {
                    intense_sentences.insert(sentence_of(m));
                }
                _ => {}
            }
        }
        let wide_in = |s: u32| wide_sentences.contains(&s);
        let intense_in = |s: u32| intense_sentences.contains(&s);
        // The strongest statement of each sentence, with its severity.
        let mut best: Option<(Severity, &Match, &'static str)> = None;
        let mut consider = |sev: Severity, m: &'static str, at: &'a Match| {
            if best.as_ref().is_none_or(|(s, _, _)| sev > *s) {
                best = Some((sev, at, m));
            }
        };
        let mut mitigated: Option<&Match> = None;
        let mut no_impact: Option<&Match> = None;
        let mut cosmetic = false;
        for (kind, m) in matches {
            // "no workaround", "pas de contournement", "not slow": nothing said.
            if !said(m) {
                continue;
            }
            let wide = wide_in(sentence_of(m));
            match kind {
                Kind::Data => consider(Severity::Outage, "data lost or exposed", m),
                Kind::Down if wide => consider(Severity::Outage, "a stop, wide scope", m),
                Kind::Down => consider(Severity::Major, "a stop", m),
                Kind::Degraded if wide => {
                    consider(Severity::Major, "a slowdown, wide scope", m);
                }
                Kind::Degraded if intense_in(sentence_of(m)) => {
                    consider(Severity::Major, "a severe slowdown", m);
                }
                Kind::Degraded => consider(Severity::Minor, "a slowdown", m),
                Kind::Wrong => consider(Severity::Minor, "something wrong", m),
                Kind::Cosmetic => {
                    cosmetic = true;
                    consider(Severity::Cosmetic, "a cosmetic problem", m);
                }
                Kind::Question => consider(Severity::Cosmetic, "a question", m),
                Kind::Wish => consider(Severity::Cosmetic, "a suggestion", m),
                Kind::Mitigated => {
                    mitigated.get_or_insert(m);
                }
                Kind::NoImpact => {
                    no_impact.get_or_insert(m);
                }
                Kind::Wide | Kind::Intense => {}
            }
        }
        let quote = |m: &Match| sentence_text(tokens, sentence_of(m));
        let found = |k: Kind| matches.iter().any(|(x, m)| *x == k && said(m));
        let question = found(Kind::Question);
        let wish = found(Kind::Wish);
        // "How do I change the logo?" asks; it reports nothing broken.
        let broken = found(Kind::Down)
            || found(Kind::Degraded)
            || found(Kind::Wrong)
            || found(Kind::Data)
            || (cosmetic && !question);
        let Some((sev, at, what)) = best else {
            return Reading {
                severity: no_impact.map(|_| Severity::Cosmetic),
                broken,
                question,
                wish,
                reason: no_impact.map_or_else(String::new, |m| {
                    format!("{}: {:?}", Kind::NoImpact.describe(), quote(m))
                }),
            };
        };
        let mut reason = format!("{what}: {:?}", quote(at));
        let severity = if sev == Severity::Outage && what.starts_with("data") {
            sev
        } else if let Some(n) = no_impact {
            // "No impact" said of one part does not undo a stop for all
            // ("Paris is not impacted, Lyon is completely down"): one step.
            reason.push_str(&format!(", but no impact: {:?}", quote(n)));
            if sev == Severity::Outage {
                Severity::Major
            } else {
                Severity::Cosmetic
            }
        } else if let Some(w) = mitigated {
            // A display problem that is worked around or "just for
            // information" is cosmetic; a mitigated outage is not.
            let lower = if cosmetic && sev <= Severity::Major {
                Severity::Cosmetic
            } else {
                sev.down()
            };
            if lower != sev {
                reason.push_str(&format!(", mitigated: {:?}", quote(w)));
            }
            lower
        } else {
            sev
        };
        Reading {
            severity: Some(severity),
            broken,
            question,
            wish,
            reason,
        }
    }
}

/// What the reading found in a whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// None when no sentence states anything about the problem.
    pub severity: Option<Severity>,
    /// Some sentence reports something not working as it should.
    pub broken: bool,
    /// Some sentence asks a question.
    pub question: bool,
    /// Some sentence suggests an improvement.
    pub wish: bool,
    /// The sentence(s) that decided, for the verdict's reasons.
    pub reason: String,
}

/// Words of one sentence, folded, at most a dozen, for reasons.
fn sentence_text(tokens: &[Token], sentence: u32) -> String {
    let words: Vec<&str> = tokens
        .iter()
        .filter(|t| t.sentence == sentence)
        .map(|t| t.word.as_str())
        .collect();
    let mut s = words.iter().take(12).copied().collect::<Vec<_>>().join(" ");
    if words.len() > 12 {
        s.push_str(" ...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::normalize::tokenize;
    use super::*;

    fn sev(text: &str, lang: &str) -> Option<Severity> {
        Reader::new().read(&tokenize(text), lang).severity
    }

    #[test]
    fn every_lexicon_phrase_compiles() {
        for kind in Kind::ALL {
            for (_, phrases) in lexicon(kind) {
                for p in *phrases {
                    assert!(Phrase::compile(p).is_ok(), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn a_stop_for_everyone_is_an_outage_and_a_workaround_lowers_it() {
        assert_eq!(
            sev(
                "Since this morning nobody can log in, the portal is down.",
                "en"
            ),
            Some(Severity::Outage)
        );
        assert_eq!(
            sev(
                "Depuis ce matin le portail ne fonctionne plus pour tous nos utilisateurs.",
                "fr"
            ),
            Some(Severity::Outage)
        );
        assert_eq!(
            sev("Depuis ce matin le portail ne fonctionne plus.", "fr"),
            Some(Severity::Major)
        );
        assert_eq!(
            sev("The export fails. We have a workaround for now.", "en"),
            Some(Severity::Minor)
        );
        // Without accents, and in the other languages.
        assert_eq!(
            sev("le serveur est arrete, personne ne peut travailler", "fr"),
            Some(Severity::Outage)
        );
        assert_eq!(
            sev("El portal no funciona para todos los usuarios.", "es"),
            Some(Severity::Outage)
        );
        assert_eq!(
            sev("Die Anmeldung funktioniert nicht.", "de"),
            Some(Severity::Major)
        );
        assert_eq!(
            sev("Il portale non funziona per tutti.", "it"),
            Some(Severity::Outage)
        );
        assert_eq!(
            sev("De website ligt plat voor iedereen.", "nl"),
            Some(Severity::Outage)
        );
        assert_eq!(sev("O portal nao funciona.", "pt"), Some(Severity::Major));
    }

    #[test]
    fn negation_and_no_impact_are_read() {
        // A negated effect states nothing; "no workaround" mitigates nothing.
        assert_eq!(
            sev("Nothing is failing, it is just slow.", "en"),
            Some(Severity::Minor)
        );
        assert_eq!(
            sev("The sync stopped. There is no workaround.", "en"),
            Some(Severity::Major)
        );
        assert_eq!(
            sev("Le statut affiche arrêté, aucun impact pour nous.", "fr"),
            Some(Severity::Cosmetic)
        );
        assert_eq!(
            sev(
                "Il nodo secondario è in errore, nessun impatto sulle applicazioni.",
                "it"
            ),
            Some(Severity::Cosmetic)
        );
        // Data loss stays an outage whatever else is said.
        assert_eq!(
            sev("We lost data on one volume, no impact on the others.", "en"),
            Some(Severity::Outage)
        );
    }

    #[test]
    fn questions_and_cosmetics_are_the_lowest_and_silence_is_none() {
        let r = Reader::new().read(&tokenize("How can I export the report to CSV?"), "en");
        assert_eq!(r.severity, Some(Severity::Cosmetic));
        assert!(r.question && !r.broken);
        let r = Reader::new().read(&tokenize("Il y a une faute de frappe sur la page."), "fr");
        assert_eq!(r.severity, Some(Severity::Cosmetic));
        assert!(r.broken);
        assert_eq!(sev("Bonjour, merci pour votre retour.", "fr"), None);
    }

    #[test]
    fn scope_is_read_within_the_sentence_not_across_the_mail() {
        // "all" in another sentence does not widen the stop.
        assert_eq!(
            sev(
                "The export button does not work. All the rest is as before.",
                "en"
            ),
            Some(Severity::Major)
        );
        assert!(
            Reader::new()
                .read(&tokenize("The export button does not work."), "en")
                .reason
                .contains("export button")
        );
    }

    #[test]
    fn a_greeting_widens_nothing_and_no_impact_of_a_part_keeps_a_stop_for_all() {
        // "Hi all," is its own sentence: the stop below it is not for all.
        assert_eq!(
            sev("Hi all,\nThe export fails since Monday.", "en"),
            Some(Severity::Major)
        );
        assert_eq!(
            sev("Bonjour a tous,\nl'export ne fonctionne plus.", "fr"),
            Some(Severity::Major)
        );
        // "No impact" said of one site lowers a stop for all by one step only.
        assert_eq!(
            sev(
                "Paris has no impact. In Lyon nobody can work, the site is completely down.",
                "en"
            ),
            Some(Severity::Major)
        );
        // A mitigated outage stays above a cosmetic problem mentioned beside it.
        assert_eq!(
            sev(
                "The portal is down for all users. The logo is also wrong. We have a workaround.",
                "en"
            ),
            Some(Severity::Major)
        );
        // A question about a logo asks; it reports nothing broken.
        let r = Reader::new().read(
            &tokenize("How do I change the logo on the login page?"),
            "en",
        );
        assert!(r.question && !r.broken, "{r:?}");
        // A closing "sorry for the late reply" is no slowdown.
        assert_eq!(
            sev("Sorry for the late reply, thanks for the update.", "en"),
            None
        );
    }
}
