"""Outbound HTTP webhooks (OpenVidu Meet v3.8.0 events, the 3.9 line's webhook resources).

`wire`: body bytes, headers and signature exactly as OpenVidu Meet sends them;
`payloads`: what each event carries; `store`: the JetStream key-value state;
`delivery`: one consumer per subscriber, retries and the delivery log.
"""
