"""Article texts of our own for the feed and push tests."""

POWER = (
    "Engineers reconnect nuclear plant to its backup power line",
    [
        "Engineers reconnected the Zaporizhzhia nuclear power plant to its backup power line on "
        "Thursday, the International Atomic Energy Agency said.",
        "The repairs were carried out during a local ceasefire agreed by both sides for the work, "
        "the agency's director general told reporters in Vienna.",
        "The plant had depended on a single remaining power line for more than three weeks, "
        "raising fears of a blackout at Europe's largest nuclear facility.",
        "Crews will stay on site to inspect the transformers before the truce expires on Sunday.",
    ],
)
SANCTIONS = (
    "EU drafts new sanctions on Russia's shadow fleet of oil tankers",
    [
        "The European Commission has drafted a new package of sanctions targeting more than one "
        "hundred tankers of Russia's shadow fleet, diplomats said on Wednesday.",
        "The measures would also cap the price of Russian oil products sold to third countries, "
        "according to a draft seen by reporters in Brussels.",
        "Hungary and Slovakia have signalled they may delay the package until their concerns "
        "about energy supplies are addressed.",
        "Ministers are expected to discuss the proposal at a meeting in Luxembourg next month.",
    ],
)
