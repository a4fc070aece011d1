"""The warning officers' web console, served at ``/console/``.

Log in; compose an alert from a hazard template and a colour level, choose the area from the
administrative tree or draw it on the map, preview what every channel will send (SMS segments,
RDS PS/RT, push notification, the spoken audio) and how many targets it reaches; a second
officer approves or rejects; the delivery board then follows every target live, and Update and
Cancel start from it. Device health (with the scheduler's notices), scheduled test reports,
alert history, officers, API tokens and the audit log have their own pages. The interface is
Chinese with an English toggle and loads nothing from elsewhere.

:func:`broadcaster.console.app.make_console_app` builds the sub-application;
:mod:`broadcaster.console.cli` adds the ``user`` and ``audit`` commands.
"""
