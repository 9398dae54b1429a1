"""The city view (``waitroom city``): every office's live waits on the city broker, for 115 agents, the city
website (open data) and cross-office steering (recommendations bridged back down to the offices).

Modules: ``config`` (the city YAML), ``view`` (the live picture, pure), ``service`` (MQTT), ``web`` (page,
API, open data), ``advice`` (the office side: recommendations for tickets, public page and dispenser),
``broker`` (the city broker's files), ``cli``. See docs/city-api.md.
"""
