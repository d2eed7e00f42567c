"""guichet: an orientation chatbot for newcomers, run by a welcome centre.

Data flow: a channel (``bot.channels``) turns a platform update into an
:class:`bot.messages.IncomingMessage`; the :class:`bot.engine.ConversationEngine`
understands it (``nlu``), decides with :mod:`bot.policy`, keeps state in a
:class:`bot.storage.Storage`, and returns :class:`bot.messages.OutgoingMessage`
objects that the channel turns back into its wire format.
"""
