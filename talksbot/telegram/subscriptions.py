"""/subscribe, /subscriptions, /unsubscribe and /digest. In groups only administrators change
anything; everyone may look."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from index.text import ascii_int
from talksbot.pushes.subscriptions import (
    DIGEST_DEFAULT_MINUTES,
    MAX_SUBSCRIPTIONS,
    SubscriptionError,
    check_digest_minutes,
    normalise_topic,
    same_topic,
)
from talksbot.render import esc, plain, subscriptions_html
from talksbot.telegram.keyboards import subscriptions_keyboard
from talksbot.telegram.services import services

NOT_ADMIN = "Only this group's administrators can change its subscriptions."


async def may_manage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Anyone in a private chat; in a group, its administrators (anonymous ones included)."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None:  # e.g. a button on an inline message: no chat to manage
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    if message and message.sender_chat and message.sender_chat.id == chat.id:
        return True
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in ("administrator", "creator")


async def subscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/subscribe (all new coverage) or /subscribe TOPIC."""
    message = update.effective_message
    if not await may_manage(update, context):
        await message.reply_text(plain(NOT_ADMIN))
        return
    try:
        topic = normalise_topic(" ".join(context.args or []))
    except SubscriptionError as exc:
        await message.reply_text(plain(str(exc)))
        return
    svc = services(context)
    subs = await svc.run(svc.store.pushes.chat_subscriptions, message.chat_id)
    if len(subs) >= MAX_SUBSCRIPTIONS and not any(same_topic(topic, t) for _, t in subs):
        await message.reply_text(
            f"This chat has {len(subs)} subscriptions, the most it can have. "
            "/unsubscribe TOPIC to make room."
        )
        return
    vector = (await svc.run(svc.embedder.embed, [topic]))[0] if topic else None
    thread = message.message_thread_id if message.is_topic_message else None  # forum topic
    added = await svc.run(svc.store.pushes.subscribe, message.chat_id, topic, vector, thread)
    what = f"new coverage about <i>{esc(topic)}</i>" if topic else "all new coverage"
    text = (
        f"Subscribed: I will post {what} here as it arrives."
        if added
        else f"Already subscribed to {what}."
    )
    await message.reply_text(text + " /subscriptions lists them.")


async def subscriptions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The chat's subscriptions, each with a remove button."""
    svc = services(context)
    subs = await svc.run(svc.store.pushes.chat_subscriptions, update.effective_chat.id)
    if not subs:
        await update.effective_message.reply_text(
            "No subscriptions. /subscribe for all new coverage, or /subscribe TOPIC."
        )
        return
    await update.effective_message.reply_text(
        subscriptions_html(subs), reply_markup=subscriptions_keyboard(subs)
    )


async def unsubscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unsubscribe (all) or /unsubscribe TOPIC."""
    message = update.effective_message
    if not await may_manage(update, context):
        await message.reply_text(plain(NOT_ADMIN))
        return
    svc = services(context)
    try:  # read as /subscribe reads it, so what was subscribed to is found
        topic = normalise_topic(" ".join(context.args or []))
    except SubscriptionError:  # nothing that could have been subscribed to
        removed = 0
    else:
        removed = await svc.run(svc.store.pushes.unsubscribe, message.chat_id, topic or None)
    if removed:
        await message.reply_text(f"Unsubscribed ({removed} subscription{'s' * (removed > 1)}).")
    else:
        await message.reply_text("There was no such subscription. /subscriptions lists them.")


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/digest (status), /digest on [MINUTES], /digest off."""
    message = update.effective_message
    svc = services(context)
    args = [a.lower() for a in context.args or []]
    if not args:
        minutes = await svc.run(svc.store.pushes.digest_minutes, message.chat_id)
        state = f"on, every {minutes} minutes" if minutes else "off (one message per story)"
        await message.reply_text(f"Digest mode is {state}. /digest on [MINUTES] or /digest off.")
        return
    if not await may_manage(update, context):
        await message.reply_text(plain("Only this group's administrators can change its pushes."))
        return
    given = ascii_int(args[1]) if len(args) == 2 else None
    if args[0] == "off" and len(args) == 1:
        minutes = 0
    elif args[0] == "on" and len(args) == 1:
        minutes = DIGEST_DEFAULT_MINUTES
    elif args[0] == "on" and given is not None:
        minutes = given
    else:
        await message.reply_text("Usage: /digest on [MINUTES], /digest off")
        return
    try:
        check_digest_minutes(minutes)
    except SubscriptionError as exc:
        await message.reply_text(plain(str(exc)))
        return
    await svc.run(svc.store.pushes.set_digest, message.chat_id, minutes)
    await message.reply_text(
        f"Digest on: one message every {minutes} minutes listing new stories."
        if minutes
        else "Digest off: one message per new story."
    )
