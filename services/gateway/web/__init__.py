"""The gateway's web pages: the participant pages, the admin console and offline `/docs`.

Pages are server-rendered (Jinja2 + htmx) and act through the gateway's own API:
`services.gateway.web.apiclient` calls the API routes in-process with the caller's
credential (a room link's member token, or the signed-in user's access token), so
every action is authorized by the same row of `services.gateway.policy` as a REST
client's, and nothing here decides who may do what.
"""
