"""`resolve.one_of`, the one-several-or-none resolution of companies, contacts, agreements and devices: alone,
and through the two resolvers whose refusal of several no tool test reaches (against the sandbox, no MCP)."""

from __future__ import annotations

import copy

import pytest

from mcp_server_connectwise.connectwise.models import Company
from mcp_server_connectwise.services import resolve
from mcp_server_connectwise.services.contacts import contact
from mcp_server_connectwise.services.errors import Look, Refused
from mcp_server_connectwise.services.ticket_devices import find_configuration

from support.customers import company, contacts_of, devices_of
from support.harness import sandbox_app, sandbox_session


async def _never() -> str:
    raise AssertionError("none() is only for no candidate")


async def test_the_only_candidate_is_taken_without_asking_who_there_is():
    taken = await resolve.one_of("Ann", ["ann"], shown_as=str, several="x", give="y", none=_never)
    assert taken == "ann"


async def test_several_candidates_are_refused_naming_each_and_a_first_page_says_more_than():
    with pytest.raises(Refused) as refused:
        await resolve.one_of(
            "Ann",
            ["Ann A", "Ann B"],
            shown_as=str.upper,
            several="contacts of company Acme",
            give="contact as one of their ids",
            none=_never,
            look=Look.FIND_CONTACT,
            more=True,
        )
    assert str(refused.value) == (
        "'Ann' matches more than 2 contacts of company Acme: ANN A, ANN B; give contact as one of their ids."
    )
    assert refused.value.look is Look.FIND_CONTACT


async def test_a_long_list_of_candidates_names_the_first_and_counts_the_rest():
    with pytest.raises(Refused, match=r"^'a' matches 5 things: 0, 1, 2 and 2 more; give one\.$"):
        await resolve.one_of("a", list(range(5)), shown_as=str, several="things", give="one", none=_never, listed=3)


async def test_no_candidate_is_refused_with_the_sentence_none_makes():
    async def who_there_is() -> str:
        return "There is no a; there is b."

    with pytest.raises(Refused, match=r"^There is no a; there is b\.$") as refused:
        await resolve.one_of("a", [], shown_as=str, several="x", give="y", none=who_there_is, look=Look.AGREEMENTS)
    assert refused.value.look is Look.AGREEMENTS


def _acme(store) -> Company:
    record = company(store, "ACME")
    return Company(id=record["id"], identifier="ACME", name=record["name"])


async def test_two_active_contacts_of_one_name_are_refused_with_both():
    app = sandbox_app()
    store = app.state.store
    acme = _acme(store)
    first = contacts_of(store, acme.id)[0]
    namesake = {**copy.deepcopy(first), "id": store.next_id("contacts")}
    for item in namesake["communicationItems"]:
        item["value"] = f"namesake.{item['value']}"
    store.put("contacts", namesake)
    name = f"{first['firstName']} {first['lastName']}"
    with pytest.raises(Refused) as refused:
        await contact(sandbox_session(app), acme, name)
    text = str(refused.value)
    assert text.startswith(f"'{name}' matches 2 contacts of company {acme.name} (ACME): {name} (")
    assert text.endswith("; give contact as one of their emails or ids.") and "(namesake." in text
    assert refused.value.look is Look.FIND_CONTACT


async def test_two_devices_of_one_name_are_refused_with_both():
    app = sandbox_app()
    store = app.state.store
    acme = _acme(store)
    first = devices_of(store, acme.id)[0]
    twin = {**copy.deepcopy(first), "id": store.next_id("configurations"), "serialNumber": "TWIN-1"}
    store.put("configurations", twin)
    with pytest.raises(Refused) as refused:
        await find_configuration(sandbox_session(app), acme, first["name"])
    assert str(refused.value) == (
        f"'{first['name']}' matches 2 configurations of company {acme.name} (ACME): "
        f"{first['name']} (id {first['id']}{', serial ' + first['serialNumber'] if first.get('serialNumber') else ''}), "
        f"{first['name']} (id {twin['id']}, serial TWIN-1); give configuration as one of their ids."
    )
