"""Tests for the request classifier, its phrase files and the evaluation report."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox.classify import PhraseBookError, classify, load_phrasebook
from inbox.classify_eval import EvalCorpusError, evaluate, format_report
from inbox.enums import RequestType

SAMPLES_DIR = Path(__file__).parent / "data" / "classify"
OUTSIDE_CORPUS_DIR = Path("/work/shared/corpus/requests")


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        # Negation and contrast.
        (
            "My account",
            "I do not want my account deleted, I only want a copy of my data.",
            RequestType.ACCESS,
        ),
        (
            "Mijn account",
            "Ik wil mijn gegevens niet laten verwijderen, maar wel inzage in wat u "
            "over mij bewaart.",
            RequestType.ACCESS,
        ),
        (
            "Konto",
            "Bitte löschen Sie mein Konto nicht, ich möchte nur eine Kopie meiner Daten.",
            RequestType.ACCESS,
        ),
        (
            "Question",
            "Please do not delete anything yet; I first want to know which personal "
            "data you hold about me.",
            RequestType.ACCESS,
        ),
        # Reply quoting: the quoted history requests erasure, the new text a copy.
        (
            "Re: your request",
            "Could you send me a copy of my personal data?\n\n"
            "On Mon, 3 Mar 2025 at 09:00, Support <help@shop.example> wrote:\n"
            "> Do you want us to delete your account and erase all your data?\n",
            RequestType.ACCESS,
        ),
        (
            "Re: uw vraag",
            "Graag een kopie van mijn persoonsgegevens.\n\n"
            "Op 3 mrt 2025 om 09:00 schreef Klantenservice <info@winkel.example>:\n"
            "Wilt u dat wij uw account verwijderen?\n",
            RequestType.ACCESS,
        ),
        (
            "Re: update",
            "Please correct my postal address.\n> Delete my account please\n> Erase all my data\n",
            RequestType.RECTIFICATION,
        ),
        # Signatures and legal footers are not the writer's request.
        (
            "Hello",
            "Please delete my account.\n-- \nJo\nTip: ask us for a copy of your data!",
            RequestType.ERASURE,
        ),
        (
            "Invoice 7781",
            "Please find attached invoice number 7781. Amount due: EUR 90.\n\n"
            "This email and any attachments are confidential. If you want your personal data "
            "erased or a copy of it, contact privacy@example.com.",
            RequestType.OTHER,
        ),
        # False friends.
        (
            "Bezwaarschrift",
            "Ik maak bezwaar tegen het besluit van de gemeente over mijn bouwvergunning (Awb).",
            RequestType.OTHER,
        ),
        (
            "Woo-verzoek",
            "Ik doe een Woo-verzoek en vraag een kopie van alle documenten over "
            "het nieuwe zwembad.",
            RequestType.OTHER,
        ),
        (
            "Widerspruch",
            "Hiermit lege ich Widerspruch gegen den Bescheid vom 1. April ein.",
            RequestType.OTHER,
        ),
        (
            "Carte perdue",
            "Je dois faire opposition sur ma carte bancaire, elle a été volée.",
            RequestType.OTHER,
        ),
        # Article references.
        (
            "Verzoek",
            "Graag wil ik gebruikmaken van mijn recht onder art. 15 AVG.",
            RequestType.ACCESS,
        ),
        ("Antrag", "Ich berufe mich auf Art. 17 DSGVO.", RequestType.ERASURE),
        ("Demande", "J'exerce mon droit au titre de l'article 21 RGPD.", RequestType.OBJECTION),
        ("Werbung", "Ich beziehe mich auf Artikel 21 Absatz 2.", RequestType.OBJECTION),
        ("Request", "I refer to art. 15 GDPR/UAVG.", RequestType.ACCESS),
        (
            "Art. 20 GDPR",
            "Please send everything as a file I can take elsewhere.",
            RequestType.PORTABILITY,
        ),
        # Breach reports by staff and customers.
        (
            "Laptop",
            "I lost my work laptop at the airport, it has client files on it.",
            RequestType.BREACH,
        ),
        (
            "Foutje",
            "Ik heb per ongeluk een mail met klantgegevens naar de verkeerde ontvanger gestuurd.",
            RequestType.BREACH,
        ),
        ("Help", "Ransomware has encrypted our files on the shared drive.", RequestType.BREACH),
        (
            "Brief",
            "Ik heb gegevens van een andere klant ontvangen in mijn post.",
            RequestType.BREACH,
        ),
        # Noise.
        ("Out of office", "I am currently away and will be back on Monday.", RequestType.OTHER),
        ("Lunch", "Shall we have lunch on Friday?", RequestType.OTHER),
    ],
)
def test_classify_tricky_sentences(subject: str, body: str, expected: RequestType) -> None:
    assert classify(subject, body).type is expected


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        # Everyday questions about what the organisation holds.
        ("Vraagje", "Wat hebben jullie allemaal over mij opgeslagen?", RequestType.ACCESS),
        ("hoi", "Hoe komen jullie aan mijn telefoonnummer?", RequestType.ACCESS),
        ("question", "What info do you have on me? Just curious.", RequestType.ACCESS),
        ("Frage", "Was haben Sie eigentlich über mich gespeichert?", RequestType.ACCESS),
        ("Question", "Que savez-vous sur moi exactement ?", RequestType.ACCESS),
        # Informal erasure.
        ("weg ermee", "Haal mijn profiel weg van jullie site.", RequestType.ERASURE),
        ("account", "Please get rid of my account and everything in it.", RequestType.ERASURE),
        # Staff reports of a mail to the wrong person, a stolen phone, ransomware.
        (
            "Oeps",
            "Ik heb net een offerte met klantgegevens naar de verkeerde klant gemaild.",
            RequestType.BREACH,
        ),
        (
            "mistake",
            "I emailed the payroll spreadsheet to the wrong customer this morning.",
            RequestType.BREACH,
        ),
        ("Fehler", "Ich habe eine Rechnung an den falschen Kunden geschickt.", RequestType.BREACH),
        ("erreur", "J'ai envoyé un devis au mauvais client.", RequestType.BREACH),
        ("Phone", "My phone was stolen on the train, the sales app is on it.", RequestType.BREACH),
        (
            "Schermen zwart",
            "Alle bestanden op de server zijn versleuteld en er wordt losgeld gevraagd.",
            RequestType.BREACH,
        ),
        (
            "Post",
            "In mijn envelop zat ook de jaaropgave van een andere klant.",
            RequestType.BREACH,
        ),
        (
            "Portal",
            "I can see someone else's invoice when I log in to the portal.",
            RequestType.BREACH,
        ),
        # A request for a person to review an automatic refusal, also when it uses "bezwaar".
        (
            "Afwijzing",
            "Ik maak bezwaar tegen de automatische afwijzing en wil dat een mens ernaar kijkt.",
            RequestType.AUTOMATED_DECISION,
        ),
        (
            "Declined",
            "My mortgage application was declined automatically. I want a human to look at it.",
            RequestType.AUTOMATED_DECISION,
        ),
        # Corrections, restriction, objection and consent in everyday words.
        (
            "naam",
            "Mijn achternaam staat verkeerd in jullie systeem, het is Jansen met een s.",
            RequestType.RECTIFICATION,
        ),
        ("Birthday", "Please correct my date of birth: 2 May.", RequestType.RECTIFICATION),
        (
            "geschil",
            "Zolang het geschil over de rekening loopt, mogen jullie mijn gegevens niet doorgeven.",
            RequestType.RESTRICTION,
        ),
        ("bellen", "Ik wil niet meer gebeld worden voor aanbiedingen.", RequestType.OBJECTION),
        # A negation in an earlier clause does not reach past a new subject pronoun.
        (
            "foto",
            "Ik werk hier niet meer en ik trek mijn toestemming voor de foto in.",
            RequestType.CONSENT_WITHDRAWAL,
        ),
    ],
)
def test_classify_informal_phrasings(subject: str, body: str, expected: RequestType) -> None:
    assert classify(subject, body).type is expected


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        # A direct request about own data, with no clear type, becomes access.
        ("Vraag", "Kunnen jullie mij mijn gegevens bezorgen?", RequestType.ACCESS),
        ("Hello", "Could you send me my details as you have them?", RequestType.ACCESS),
        # A direct request with a request phrase beats the noise of a job application.
        (
            "Mijn sollicitatie van vorig jaar",
            "Ik ben niet aangenomen. Willen jullie mijn cv, brief en notities verwijderen?",
            RequestType.ERASURE,
        ),
    ],
)
def test_classify_direct_request_low_confidence(subject: str, body: str,
                                                expected: RequestType) -> None:
    result = classify(subject, body)
    assert result.type is expected
    assert result.confidence < 0.6


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Wachtwoord", "Ik kan niet inloggen. Kunnen jullie mijn wachtwoord resetten?"),
        ("Bestelling", "Kunnen jullie mijn bestelling van vorige week annuleren?"),
        ("Meeting", "Can you send me the slides from yesterday's meeting?"),
        ("Termin", "Können Sie mir bitte einen Termin für nächste Woche geben?"),
        ("Rendez-vous", "Pouvez-vous me confirmer le rendez-vous de jeudi ?"),
        ("Sollicitatie", "Graag solliciteer ik naar de functie. Mijn cv vindt u in de bijlage."),
        ("Application", "Please find my CV attached for the vacancy of data analyst."),
    ],
)
def test_classify_everyday_requests_stay_other(subject: str, body: str) -> None:
    assert classify(subject, body).type is RequestType.OTHER


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Ik wil graag een kopie van mijn gegevens die u van mij heeft.", "nl"),
        ("I would like a copy of the data that you have about me.", "en"),
        ("Ich möchte bitte eine Kopie der Daten, die Sie über mich haben.", "de"),
        ("Je voudrais une copie des données que vous avez sur moi, s'il vous plaît.", "fr"),
        ("12345", "und"),
    ],
)
def test_classify_detects_language(text: str, language: str) -> None:
    assert classify("", text).language == language


def test_classify_evidence_as_found_in_text() -> None:
    result = classify("Inzageverzoek", "Op grond van Art. 15 AVG vraag ik inzage.")
    assert "Inzageverzoek" in result.evidence


def test_classify_secondary_lists_bundled_rights() -> None:
    body = (
        "I request erasure of my personal data under Art. 17 GDPR. I also withdraw my "
        "consent and object to the processing of my data under Art. 21 GDPR."
    )
    result = classify("Erasure request", body)
    assert result.type is RequestType.ERASURE
    assert RequestType.OBJECTION in result.secondary


def test_classify_confidence_high_for_clear_winner() -> None:
    result = classify(
        "Subject access request",
        "Under Art. 15 GDPR I request a copy of my personal data and the right of access.",
    )
    assert result.confidence >= 0.8


def test_classify_confidence_low_for_close_call() -> None:
    result = classify("Data", "Please delete my data or send me a copy of my data.")
    assert result.confidence < 0.6


def test_classify_no_signal_moderate_confidence() -> None:
    result = classify("Hello", "See you tomorrow.")
    assert result.type is RequestType.OTHER
    assert 0.3 <= result.confidence <= 0.7
    assert result.evidence == ()


def test_classify_extra_phrase_changes_result(tmp_path: Path) -> None:
    subject, body = "Vraag", "Graag een schoonmaakbeurt van het klantenarchief."
    assert classify(subject, body).type is RequestType.OTHER

    (tmp_path / "local.yaml").write_text(
        "language: nl\nphrases:\n  erasure:\n    - schoonmaakbeurt: 5\n", encoding="utf-8"
    )
    phrases = load_phrasebook([tmp_path])
    assert classify(subject, body, phrases).type is RequestType.ERASURE


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("phrases:\n  access:\n    - inzage: 99\n", "phrases.access[0]"),
        ("phrases:\n  access:\n    - inzage: 99\n", "within ±10"),
        ("phrases:\n  wishes:\n    - inzage\n", "unknown request type 'wishes'"),
        ("phrases:\n  access:\n    - ...: 2\n", "must start with a word"),
        ("stopwords: [no]\n", "stopwords[0]"),
        ("colours: [red]\n", "unknown section"),
        ("phrases: [oops\n", "not valid YAML"),
        ("false_friends:\n  - phrase: awb\n    suppresses: [bogus]\n", "'bogus'"),
    ],
)
def test_load_phrasebook_invalid_file_error(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "broken.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(PhraseBookError) as caught:
        load_phrasebook([tmp_path])
    assert str(tmp_path / "broken.yaml") in str(caught.value)
    assert fragment in str(caught.value)


def test_load_phrasebook_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PhraseBookError, match="not found"):
        load_phrasebook([tmp_path / "absent"])


def test_evaluate_own_samples_accuracy() -> None:
    report = evaluate(SAMPLES_DIR)
    assert report.total >= 60
    assert report.accuracy >= 0.95


def test_evaluate_own_samples_other_precision() -> None:
    precision = evaluate(SAMPLES_DIR).precision(RequestType.OTHER)
    assert precision is not None
    assert precision >= 0.95


def test_evaluate_own_samples_cover_every_type() -> None:
    expected = {outcome.sample.expected for outcome in evaluate(SAMPLES_DIR).outcomes}
    assert expected == set(RequestType)


def test_evaluate_outside_corpus_accuracy() -> None:
    if not (OUTSIDE_CORPUS_DIR / "MANIFEST.csv").is_file():
        pytest.skip(f"outside letter corpus not present at {OUTSIDE_CORPUS_DIR}")
    assert evaluate(OUTSIDE_CORPUS_DIR).accuracy >= 0.95


def test_format_report_last_line_accuracy() -> None:
    report = evaluate(SAMPLES_DIR)
    last = format_report(report).splitlines()[-1]
    assert last == f"accuracy: {report.accuracy:.3f} ({report.correct}/{report.total})"


def test_format_report_has_confusion_matrix() -> None:
    assert "confusion matrix" in format_report(evaluate(SAMPLES_DIR))


def test_evaluate_missing_manifest_names_path(tmp_path: Path) -> None:
    with pytest.raises(EvalCorpusError, match=str(tmp_path / "MANIFEST.csv")):
        evaluate(tmp_path)


def test_evaluate_missing_file_names_path(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.csv").write_text(
        "file,language,expected_type\ngone.txt,en,access\n", encoding="utf-8"
    )
    with pytest.raises(EvalCorpusError, match=str(tmp_path / "gone.txt")):
        evaluate(tmp_path)


def test_evaluate_reads_eml_plain_part(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Datalek"
    message["From"] = "medewerker@example.nl"
    message.set_content("Ik ben mijn laptop kwijt met klantdossiers erop.")
    message.add_alternative("<p>Nieuwsbrief met korting</p>", subtype="html")
    (tmp_path / "one.eml").write_bytes(message.as_bytes())
    (tmp_path / "MANIFEST.csv").write_text(
        "file,language,expected_type,notes\none.eml,nl,breach,staff report\n", encoding="utf-8"
    )

    report = evaluate(tmp_path)
    assert report.correct == 1
