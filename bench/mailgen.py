"""Generate varied, deterministic mail to the privacy mailbox for the ingest benchmarks.

Run ``python bench/mailgen.py --count 100 --out DIR`` to write ``DIR/000001.eml`` and on.
On one Python version, the same seed always produces the same bytes. With seed 1 to 20, a
batch of 50 messages averages 135 to 154 KiB, because one in five carries a 50 KiB to 2 MiB
attachment.
"""

from __future__ import annotations

import argparse
import html
import logging
import math
import random
import textwrap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

logger = logging.getLogger(__name__)

ATTACHMENT_BLOCK_SIZE = 5
"""One message in every block of this many messages has an attachment."""

MIN_ATTACHMENT_BYTES = 50 * 1024
"""Smallest attachment, in bytes before base64 encoding."""

MAX_ATTACHMENT_BYTES = 2 * 1024 * 1024
"""Largest attachment, in bytes before base64 encoding."""

SIZE_STRATA = 10
"""Number of equal-probability bands of the attachment size distribution."""

REPLY_PROBABILITY = 1 / 6
"""Chance that a message after the first replies to an earlier generated message."""

FIRST_DATE = datetime(2026, 11, 2, 8, 0, tzinfo=timezone(timedelta(hours=1)))
"""Date header of the first message. Each later one follows 3 to 240 minutes after the last."""

MAILBOX_ADDRESS = "privacy@example.org"
"""To address of every generated message."""

LANGUAGE_WEIGHTS = {"nl": 40, "en": 35, "de": 15, "fr": 10}
"""Relative share of each language."""

TYPE_WEIGHTS = {
    "access": 25,
    "erasure": 18,
    "rectification": 8,
    "objection": 10,
    "restriction": 3,
    "portability": 4,
    "automated_decision": 3,
    "consent_withdrawal": 9,
    "breach": 12,
    "other": 8,
}
"""Relative share of each request type, with access and erasure the most common."""


@dataclass(frozen=True)
class Vocabulary:
    """Word lists of one language, from which subjects and bodies are put together."""

    greetings: list[str]
    closings: list[str]
    first_names: list[str]
    last_names: list[str]
    # A filler sentence is clause + object + place, in the order of `sentence_order`.
    clauses: list[str]
    objects: list[str]
    places: list[str]
    sentence_order: str
    reference_label: str
    reply_header: str
    follow_ups: list[str]
    subjects: dict[str, list[str]]
    requests: dict[str, list[str]]
    attachment_names: list[str]


VOCABULARIES: dict[str, Vocabulary] = {
    "nl": Vocabulary(
        greetings=["Geachte heer, mevrouw,", "Beste privacyteam,", "Goedemiddag,", "Hallo,"],
        closings=["Met vriendelijke groet,", "Vriendelijke groeten,", "Groet,"],
        first_names=["Sanne", "Joris", "Femke", "Bart", "Noor", "Wouter", "Ayşe", "Daan"],
        last_names=["de Boer", "Mulder", "Visser", "van Dijk", "Bakker", "Koç", "Smeets"],
        clauses=["Vorige maand heb ik", "Sinds 2021 heb ik", "Gisteren heb ik", "Twee keer heb ik"],
        objects=[
            "een bestelling geplaatst",
            "contact gehad met de klantenservice",
            "een account aangemaakt",
            "mijn adres gewijzigd",
            "een klacht ingediend",
        ],
        places=["via uw website", "in de app", "per telefoon", "in uw winkel in Utrecht"],
        sentence_order="{clause} {object} {place}.",
        reference_label="Klantnummer",
        reply_header="Op {date:%d-%m-%Y} om {date:%H:%M} schreef {name}:",
        follow_ups=[
            "Ik heb nog geen reactie ontvangen op mijn verzoek hieronder.",
            "Hierbij stuur ik de gevraagde kopie van mijn legitimatie, met BSN afgeschermd.",
            "Kunt u mij laten weten wanneer ik een antwoord kan verwachten?",
        ],
        subjects={
            "access": ["Inzageverzoek", "Verzoek om inzage in mijn persoonsgegevens"],
            "erasure": ["Verwijderverzoek", "Graag al mijn gegevens wissen"],
            "rectification": ["Correctieverzoek", "Onjuiste gegevens in mijn dossier"],
            "objection": ["Bezwaar tegen direct marketing", "Bezwaar tegen verwerking"],
            "restriction": ["Verzoek om beperking van de verwerking"],
            "portability": ["Dataportabiliteit", "Mijn gegevens in CSV meenemen"],
            "automated_decision": ["Menselijke beoordeling van geautomatiseerd besluit"],
            "consent_withdrawal": ["Intrekken toestemming", "Ik trek mijn toestemming in"],
            "breach": ["Datalek gemeld door medewerker", "Mogelijk datalek: laptop kwijt"],
            "other": ["Vraag over uw privacyverklaring", "Vraag aan de FG"],
        },
        requests={
            "access": ["Op grond van artikel 15 AVG vraag ik inzage in al mijn persoonsgegevens."],
            "erasure": ["Ik verzoek u al mijn persoonsgegevens te verwijderen (artikel 17 AVG)."],
            "rectification": ["Mijn geboortedatum en adres kloppen niet; wilt u die corrigeren?"],
            "objection": ["Ik maak bezwaar tegen het gebruik van mijn gegevens voor reclame."],
            "restriction": ["Beperk de verwerking van mijn gegevens zolang mijn bezwaar loopt."],
            "portability": ["Stuur mij mijn gegevens in een machineleesbaar formaat, zoals CSV."],
            "automated_decision": [
                "Mijn aanvraag is automatisch afgewezen; ik wil dat een "
                "medewerker hem opnieuw beoordeelt."
            ],
            "consent_withdrawal": [
                "Ik trek mijn toestemming voor de nieuwsbrief en profilering in."
            ],
            "breach": ["Een e-mail met klantgegevens is naar de verkeerde ontvanger gestuurd."],
            "other": ["Hoe lang bewaart u de gegevens van oud-klanten?"],
        },
        attachment_names=["kopie-legitimatie.pdf", "scan-brief.jpg", "bewijsstukken.zip"],
    ),
    "en": Vocabulary(
        greetings=["Dear Sir or Madam,", "Dear Data Protection Officer,", "Hello,", "Hi,"],
        closings=["Kind regards,", "Best wishes,", "Yours faithfully,", "Thanks,"],
        first_names=["Emily", "James", "Aisha", "Oliver", "Chloe", "Ravi", "Megan", "Liam"],
        last_names=["Turner", "Hughes", "Patel", "O'Neill", "Campbell", "Wright", "Nowak"],
        clauses=["Last month I", "Since 2021 I have", "Yesterday I", "Twice this year I"],
        objects=[
            "placed an order",
            "contacted your customer service",
            "opened an account",
            "changed my address",
            "made a complaint",
        ],
        places=["through your website", "in the app", "by phone", "at your Leeds branch"],
        sentence_order="{clause} {object} {place}.",
        reference_label="Customer number",
        reply_header="On {date:%d/%m/%Y} at {date:%H:%M}, {name} wrote:",
        follow_ups=[
            "I have not yet had a reply to my request below.",
            "As requested, I attach a copy of my passport with the number blacked out.",
            "Could you tell me when I can expect an answer?",
        ],
        subjects={
            "access": ["Subject access request", "Request for a copy of my personal data"],
            "erasure": ["Right to erasure request", "Please delete my data"],
            "rectification": ["Please correct my details", "Inaccurate data on my account"],
            "objection": ["Objection to direct marketing", "I object to profiling"],
            "restriction": ["Request to restrict processing"],
            "portability": ["Data portability request", "Export of my data"],
            "automated_decision": ["Human review of an automated decision"],
            "consent_withdrawal": ["Withdrawal of consent", "I withdraw my consent"],
            "breach": ["Data breach report", "Possible breach: phishing email clicked"],
            "other": ["Question about your privacy notice", "Question for your DPO"],
        },
        requests={
            "access": ["Under Article 15 GDPR, please send me a copy of all my personal data."],
            "erasure": ["Please erase all personal data you hold about me (Article 17 GDPR)."],
            "rectification": ["My date of birth and address are wrong; please rectify them."],
            "objection": ["I object to the use of my data for direct marketing."],
            "restriction": ["Please restrict processing of my data while my complaint is open."],
            "portability": ["Please send my data in a machine-readable format such as JSON."],
            "automated_decision": [
                "My application was refused automatically; I want a person to review it."
            ],
            "consent_withdrawal": ["I withdraw my consent to the newsletter and to profiling."],
            "breach": ["A spreadsheet with customer data was sent to the wrong recipient."],
            "other": ["How long do you keep the data of former customers?"],
        },
        attachment_names=["passport-copy.pdf", "letter-scan.jpg", "evidence.zip"],
    ),
    "de": Vocabulary(
        greetings=["Sehr geehrte Damen und Herren,", "Hallo Datenschutzteam,", "Guten Tag,"],
        closings=["Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße"],
        first_names=["Lukas", "Anna", "Jörg", "Leonie", "Felix", "Büşra", "Maximilian"],
        last_names=["Schäfer", "Becker", "Hoffmann", "Krüger", "Schulz", "Yıldız"],
        clauses=["Letzten Monat habe ich", "Seit 2021 habe ich", "Gestern habe ich"],
        objects=[
            "eine Bestellung aufgegeben",
            "den Kundenservice kontaktiert",
            "ein Konto eröffnet",
            "meine Adresse geändert",
        ],
        places=["über Ihre Website", "in der App", "telefonisch", "in Ihrer Filiale in Köln"],
        sentence_order="{clause} {place} {object}.",
        reference_label="Kundennummer",
        reply_header="Am {date:%d.%m.%Y} um {date:%H:%M} schrieb {name}:",
        follow_ups=[
            "Auf meine Anfrage unten habe ich noch keine Antwort erhalten.",
            "Anbei die gewünschte Kopie meines Ausweises, geschwärzt.",
        ],
        subjects={
            "access": ["Auskunftsersuchen nach Art. 15 DSGVO"],
            "erasure": ["Antrag auf Löschung meiner Daten"],
            "rectification": ["Berichtigung meiner Daten"],
            "objection": ["Widerspruch gegen Werbung"],
            "restriction": ["Einschränkung der Verarbeitung"],
            "portability": ["Datenübertragbarkeit"],
            "automated_decision": ["Überprüfung einer automatisierten Entscheidung"],
            "consent_withdrawal": ["Widerruf meiner Einwilligung"],
            "breach": ["Datenschutzvorfall: Ransomware", "Phishing-Vorfall"],
            "other": ["Frage zur Datenschutzerklärung"],
        },
        requests={
            "access": ["Bitte erteilen Sie mir Auskunft über alle gespeicherten Daten."],
            "erasure": ["Bitte löschen Sie alle personenbezogenen Daten zu meiner Person."],
            "rectification": ["Mein Geburtsdatum ist falsch gespeichert; bitte berichtigen."],
            "objection": ["Ich widerspreche der Nutzung meiner Daten für Werbung."],
            "restriction": ["Bitte schränken Sie die Verarbeitung bis zur Klärung ein."],
            "portability": ["Bitte senden Sie mir meine Daten in einem gängigen Format."],
            "automated_decision": [
                "Bitte lassen Sie die automatische Ablehnung von einem Menschen prüfen."
            ],
            "consent_withdrawal": ["Hiermit widerrufe ich meine Einwilligung."],
            "breach": ["Auf einem Dateiserver wurden Personaldaten verschlüsselt."],
            "other": ["Wer ist Ihr Datenschutzbeauftragter?"],
        },
        attachment_names=["ausweis-kopie.pdf", "brief.jpg", "nachweise.zip"],
    ),
    "fr": Vocabulary(
        greetings=["Madame, Monsieur,", "Bonjour,"],
        closings=["Cordialement,", "Bien à vous,", "Salutations distinguées,"],
        first_names=["Camille", "Étienne", "Inès", "Julien", "Léa", "Mathis", "Zoé"],
        last_names=["Dubois", "Lefèvre", "Moreau", "Girard", "Benali", "Rousseau"],
        clauses=["Le mois dernier, j'ai", "Depuis 2021, j'ai", "Hier, j'ai"],
        objects=[
            "passé une commande",
            "contacté le service client",
            "ouvert un compte",
            "changé d'adresse",
        ],
        places=["sur votre site", "dans l'application", "par téléphone", "dans votre agence"],
        sentence_order="{clause} {object} {place}.",
        reference_label="Numéro client",
        reply_header="Le {date:%d/%m/%Y} à {date:%H:%M}, {name} a écrit :",
        follow_ups=[
            "Je n'ai pas encore reçu de réponse à ma demande ci-dessous.",
            "Vous trouverez ci-joint la copie de ma pièce d'identité.",
        ],
        subjects={
            "access": ["Demande d'accès à mes données"],
            "erasure": ["Demande d'effacement"],
            "rectification": ["Demande de rectification"],
            "objection": ["Opposition à la prospection"],
            "restriction": ["Demande de limitation du traitement"],
            "portability": ["Portabilité de mes données"],
            "automated_decision": ["Réexamen d'une décision automatisée"],
            "consent_withdrawal": ["Retrait de mon consentement"],
            "breach": ["Violation de données : courriel mal adressé"],
            "other": ["Question sur votre politique de confidentialité"],
        },
        requests={
            "access": ["Je vous demande une copie de toutes mes données personnelles."],
            "erasure": ["Merci d'effacer toutes les données me concernant (article 17 RGPD)."],
            "rectification": ["Mon adresse est erronée ; merci de la rectifier."],
            "objection": ["Je m'oppose à l'utilisation de mes données à des fins commerciales."],
            "restriction": ["Merci de limiter le traitement pendant l'examen de ma demande."],
            "portability": ["Merci de m'envoyer mes données dans un format lisible par machine."],
            "automated_decision": [
                "Mon dossier a été refusé automatiquement ; je demande un réexamen humain."
            ],
            "consent_withdrawal": ["Je retire mon consentement à la lettre d'information."],
            "breach": ["Un courriel contenant des données clients a été mal adressé."],
            "other": ["Combien de temps conservez-vous les données des anciens clients ?"],
        },
        attachment_names=["piece-identite.pdf", "courrier.jpg", "justificatifs.zip"],
    ),
}

ATTACHMENT_TYPES = {
    ".pdf": ("application", "pdf"),
    ".jpg": ("image", "jpeg"),
    ".zip": ("application", "zip"),
}
"""MIME type of an attachment, by the extension of its file name."""


@dataclass
class GeneratedMail:
    """The parts of a generated message that a later reply quotes or refers to."""

    message_id: str
    references: list[str]
    subject: str
    sender: str
    sender_name: str
    language: str
    date: datetime
    text: str


@dataclass
class _SizeSampler:
    """Source of log-uniform attachment sizes, stratified so small batches stay near the mean."""

    rng: random.Random
    pending_strata: list[int] = field(default_factory=list)

    def next_size(self) -> int:
        """Draw the next size in bytes from a stratum not yet used in this round."""
        # Every SIZE_STRATA attachments use each band once. With plain draws from this long-tailed
        # distribution, the mean of 10 attachments has a standard deviation of about 30% of it.
        if not self.pending_strata:
            self.pending_strata = list(range(SIZE_STRATA))
            self.rng.shuffle(self.pending_strata)
        quantile = (self.pending_strata.pop() + self.rng.random()) / SIZE_STRATA

        low, high = math.log(MIN_ATTACHMENT_BYTES), math.log(MAX_ATTACHMENT_BYTES)
        return int(math.exp(low + quantile * (high - low)))


def generate_messages(n: int, seed: int = 1) -> Iterator[bytes]:
    """Yield `n` raw messages, the same bytes for the same `n` and `seed`."""
    rng = random.Random(seed)
    sizes = _SizeSampler(random.Random(seed + 1))
    history: list[GeneratedMail] = []
    date = FIRST_DATE
    attachment_slot = 0

    for index in range(n):
        if index % ATTACHMENT_BLOCK_SIZE == 0:
            attachment_slot = index + rng.randrange(ATTACHMENT_BLOCK_SIZE)
        date += timedelta(minutes=rng.randint(3, 240), seconds=rng.randint(0, 59))
        message_id = f"<mailgen.{seed}.{index + 1:06d}.{rng.getrandbits(32):08x}@example.org>"

        if history and rng.random() < REPLY_PROBABILITY:
            mail, message = _build_reply(rng, rng.choice(history), message_id, date)
        else:
            mail, message = _build_request(rng, message_id, date)
        if index == attachment_slot:
            _attach_random_file(rng, message, VOCABULARIES[mail.language], sizes.next_size())

        # The email package draws multipart boundaries from the global random module, so
        # fixed boundaries keep the output reproducible.
        for number, part in enumerate(p for p in message.walk() if p.is_multipart()):
            part.set_boundary(f"=_mailgen_{seed}_{index + 1}_{number}")

        history.append(mail)
        yield message.as_bytes()


def _build_request(
    rng: random.Random, message_id: str, date: datetime
) -> tuple[GeneratedMail, EmailMessage]:
    """Build a first message of a random language and request type."""
    language = _weighted_choice(rng, LANGUAGE_WEIGHTS)
    request_type = _weighted_choice(rng, TYPE_WEIGHTS)
    vocabulary = VOCABULARIES[language]
    name = f"{rng.choice(vocabulary.first_names)} {rng.choice(vocabulary.last_names)}"
    # Staff report breaches from the organisation's domain, and data subjects write from outside.
    domain = rng.choice(["example.com", "example.net"])
    if request_type == "breach":
        domain = "example.org"
    sender = f"{_local_part(name)}{rng.randint(1, 99)}@{domain}"

    paragraphs = [rng.choice(vocabulary.greetings)]
    for _ in range(rng.randint(1, 6)):
        filler = [_filler_sentence(rng, vocabulary) for _ in range(rng.randint(2, 5))]
        paragraphs.append(_wrap(" ".join(filler)))
    request = _wrap(rng.choice(vocabulary.requests[request_type]))
    paragraphs.insert(rng.randint(2, len(paragraphs)), request)
    paragraphs.append(f"{vocabulary.reference_label}: {rng.randint(10**7, 10**8 - 1)}")
    paragraphs.append(f"{rng.choice(vocabulary.closings)}\n{name}")
    text = "\n\n".join(paragraphs) + "\n"

    subject = rng.choice(vocabulary.subjects[request_type])
    mail = GeneratedMail(message_id, [], subject, sender, name, language, date, text)
    return mail, _compose(rng, mail, paragraphs)


def _build_reply(
    rng: random.Random, parent: GeneratedMail, message_id: str, date: datetime
) -> tuple[GeneratedMail, EmailMessage]:
    """Build a follow-up from the sender of `parent` that quotes it below the new text."""
    vocabulary = VOCABULARIES[parent.language]
    follow_up = f"{_wrap(rng.choice(vocabulary.follow_ups))}\n\n{rng.choice(vocabulary.closings)}\n"
    header = vocabulary.reply_header.format(date=parent.date, name=parent.sender_name)
    quoted = "\n".join(f"> {line}" if line else ">" for line in parent.text.splitlines())
    text = f"{follow_up}{parent.sender_name}\n\n{header}\n{quoted}\n"

    subject = parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}"
    references = [*parent.references, parent.message_id]
    mail = GeneratedMail(
        message_id,
        references,
        subject,
        parent.sender,
        parent.sender_name,
        parent.language,
        date,
        text,
    )
    return mail, _compose(rng, mail, text.split("\n\n"))


def _compose(rng: random.Random, mail: GeneratedMail, paragraphs: list[str]) -> EmailMessage:
    """Put headers and a plain, HTML or plain-and-HTML body on a new message."""
    message = EmailMessage()
    message["From"] = f"{mail.sender_name} <{mail.sender}>"
    message["To"] = MAILBOX_ADDRESS
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.date)
    message["Message-ID"] = mail.message_id
    if mail.references:
        message["In-Reply-To"] = mail.references[-1]
        message["References"] = " ".join(mail.references)

    body_kind = rng.choices(["plain", "alternative", "html"], weights=[55, 30, 15])[0]
    if body_kind == "html":
        message.set_content(_render_html(rng, paragraphs), subtype="html")
        return message

    message.set_content(mail.text)
    if body_kind == "alternative":
        message.add_alternative(_render_html(rng, paragraphs), subtype="html")
    return message


def _render_html(rng: random.Random, paragraphs: list[str]) -> str:
    """Render paragraphs as a small HTML document, sometimes with a remote logo and a link."""
    body = "\n".join(
        "<p>" + html.escape(paragraph).replace("\n", "<br>\n") + "</p>" for paragraph in paragraphs
    )
    if rng.random() < 0.3:
        body = '<img src="https://cdn.example.net/logo.png" alt="logo" width="120">\n' + body
        body += (
            '\n<p><a href="https://www.example.com/privacy">https://www.example.com/privacy</a></p>'
        )
    return f'<html><head><meta charset="utf-8"></head><body>\n{body}\n</body></html>\n'


def _attach_random_file(
    rng: random.Random, message: EmailMessage, vocabulary: Vocabulary, size: int
) -> None:
    """Attach `size` random bytes under a plausible file name, base64 encoded."""
    filename = rng.choice(vocabulary.attachment_names)
    maintype, subtype = ATTACHMENT_TYPES[Path(filename).suffix]
    message.add_attachment(rng.randbytes(size), maintype, subtype, filename=filename)


def _filler_sentence(rng: random.Random, vocabulary: Vocabulary) -> str:
    """Put together one background sentence from the vocabulary's clause, object and place."""
    return vocabulary.sentence_order.format(
        clause=rng.choice(vocabulary.clauses),
        object=rng.choice(vocabulary.objects),
        place=rng.choice(vocabulary.places),
    )


def _wrap(paragraph: str) -> str:
    """Wrap a paragraph at 72 columns, as mail clients do for plain text."""
    return textwrap.fill(paragraph, width=72, break_long_words=False, break_on_hyphens=False)


def _weighted_choice(rng: random.Random, weights: dict[str, int]) -> str:
    """Pick a key of `weights` with probability proportional to its value."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _local_part(name: str) -> str:
    """Turn a display name into an ASCII local part, such as ``anna.kruger`` for Anna Krüger."""
    folded = name.lower().replace("ß", "ss").replace("ı", "i")
    decomposed = unicodedata.normalize("NFKD", folded)
    words = ("".join(c for c in word if c.isascii() and c.isalnum()) for word in decomposed.split())
    return ".".join(word for word in words if word)


def main(argv: list[str] | None = None) -> int:
    """Write generated messages to a folder as numbered .eml files."""
    parser = argparse.ArgumentParser(description="Write generated benchmark mail as .eml files.")
    parser.add_argument("--count", type=int, default=100, help="number of messages to write")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the .eml files, created if missing"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    args.out.mkdir(parents=True, exist_ok=True)
    total_bytes = 0
    for number, raw in enumerate(generate_messages(args.count, args.seed), start=1):
        (args.out / f"{number:06d}.eml").write_bytes(raw)
        total_bytes += len(raw)

    logger.info(
        "wrote %d messages to %s, %d bytes in total, %d bytes on average",
        args.count,
        args.out,
        total_bytes,
        total_bytes // args.count,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
