"""What crosses a service boundary: the request and response models of each service's
API and the few pure rules both sides apply (pydantic models and constants only; no
Flask, no database). The owning service and the gateway import them from here, so
neither needs the other's code."""
