# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:

    # Connection to the Secure Endpoint API v1 (inventory plugin; the EDA source takes the same names).
    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of the Secure Endpoint API, for example C(https://api.eu.amp.cisco.com). Overrides O(region).
      - Must not contain a user or password.
    type: str
    env:
      - name: SECURE_ENDPOINT_API_HOST
  region:
    description:
      - Secure Endpoint cloud whose API is used when O(url) is not set
        (C(nam) U(https://api.amp.cisco.com), C(eu) U(https://api.eu.amp.cisco.com), C(apjc) U(https://api.apjc.amp.cisco.com)).
    type: str
    choices: [nam, eu, apjc]
    default: nam
    env:
      - name: SECURE_ENDPOINT_REGION
  client_id:
    description:
      - API client ID (the user of the Basic authentication).
    type: str
    required: true
    env:
      - name: SECURE_ENDPOINT_CLIENT_ID
  api_key:
    description:
      - API key (the password of the Basic authentication). Never written to any output or log.
      - Prefer the environment variable (an AWX credential injects it) over the source file.
    type: str
    required: true
    env:
      - name: SECURE_ENDPOINT_API_KEY
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
    env:
      - name: SECURE_ENDPOINT_VALIDATE_CERTS
  ca_path:
    description: PEM file of the CA bundle to verify the API's certificate with (a TLS-inspecting proxy's CA, for example).
    type: path
  timeout:
    description: Seconds to wait for each API answer.
    type: int
    default: 30
  page_size:
    description: Computers per page, 1 to 500 (the API's maximum).
    type: int
    default: 500
  max_retries:
    description: How many times a request answered 429 (rate limited) is retried after waiting what the API asks.
    type: int
    default: 3
  max_wait:
    description:
      - Longest wait in seconds for one rate-limit reset; a longer reset fails with a clear message instead of waiting.
    type: float
    default: 60
'''
