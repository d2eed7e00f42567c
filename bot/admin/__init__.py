"""The admin side: check the content, reload it live, and learn from the questions the bot missed.

- :mod:`bot.admin.check` finds mistakes in ``intents/``, ``responses/``, ``config.yml`` and the
  message catalogs, and says where and what in plain words (``guichet content check``);
- :mod:`bot.admin.reload` switches a running bot to new content without a restart;
- :mod:`bot.admin.inbox`, :mod:`bot.admin.ratings` and :mod:`bot.admin.audit` keep what admins
  need to improve the answers, fed by :mod:`bot.admin.journal` from the engine;
- :mod:`bot.admin.web` shows it all to admins under ``/staff/admin``.
"""
