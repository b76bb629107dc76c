"""The web role's gateway: authentication by API key, scopes and model allow-lists, the forwarding proxy
(streams passed through as they arrive), the engine pool (health, routing, retry, cool-down), audit rows and
probes. Engines are reached over HTTP only: this package never imports ``engine``, ``store`` or ``api``.

``create_web_app`` (in ``ember.gateway.app``) wires it together.
"""
