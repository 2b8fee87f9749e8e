# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Texts a Windows endpoint prints: .NET/PowerShell messages (en-US, fr-FR), curl, netsh, connector files.

The curl texts for 200 OK and 0x80092013 are the seed's samples (tests/unit/plugins/plugin_utils/samples/seed-*); the rest
is synthetic, written the way Windows PowerShell 5.1 / .NET Framework 4.8 / curl 8.0.1 word them.
"""

from __future__ import annotations

import json
import os
import typing as t
from xml.sax.saxutils import escape

from tests.paths import SAMPLES_DIR


MESSAGES: dict[str, dict[str, str]] = {
    'en-US': {
        'no_such_host': 'No such host is known',
        'dns_timeout': 'This is usually a temporary error during hostname resolution and means that the local server did not receive a '
                       'response from an authoritative server',
        'server_failure': 'No such host is known',
        'refused': 'No connection could be made because the target machine actively refused it {address}:{port}',
        'web_timeout': 'The operation has timed out',
        'web_refused': 'Unable to connect to the remote server',
        'sspi': 'A call to SSPI failed, see inner exception.',
        'invalid_cert': 'The remote certificate is invalid according to the validation procedure.',
        'access_denied': "Access to the path '{path}' is denied.",
        'file_not_found': "Could not find file '{path}'.",
        'not_recognized': "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. "
                          "Check the spelling of the name, or if a path was included, verify that the path is correct and try again.",
        'revocation_schannel': 'The revocation function was unable to check revocation because the revocation server was offline.',
        'proxy_timeout': 'A connection attempt failed because the connected party did not properly respond after a period of time, '
                         'or established connection failed because connected host has failed to respond {address}:{port}',
        'aia': '[1]Authority Info Access: Access Method=On-line Certificate Status Protocol (1.3.6.1.5.5.7.48.1), '
               'Alternative Name:URL={ocsp}, [2]Authority Info Access: Access Method=Certification Authority Issuer '
               '(1.3.6.1.5.5.7.48.2), Alternative Name:URL={issuer}',
        'cdp': '[1]CRL Distribution Point: Distribution Point Name:Full Name:URL={crl}',
        'netsh_direct': '\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).\r\n\r\n',
        'netsh_proxy': '\r\nCurrent WinHTTP proxy settings:\r\n\r\n    Proxy Server(s) :  {proxy}\r\n    Bypass List     :  (none)\r\n\r\n',
        'category': 'ObjectNotFound',
    },
    'fr-FR': {
        'no_such_host': 'Hôte inconnu',
        'dns_timeout': "Il s'agit généralement d'une erreur temporaire qui se produit durant la résolution du nom d'hôte et qui signifie "
                       "que le serveur local n'a pas reçu de réponse d'un serveur faisant autorité",
        'server_failure': 'Hôte inconnu',
        'refused': 'Aucune connexion n\u2019a pu être établie car l\u2019ordinateur cible l\u2019a expressément refusée {address}:{port}',
        'web_timeout': "L'opération a expiré.",
        'web_refused': 'Impossible de se connecter au serveur distant',
        'sspi': "Un appel à SSPI a échoué, consultez l'exception interne.",
        'invalid_cert': "Le certificat distant n'est pas valide selon la procédure de validation.",
        'access_denied': "L'accès au chemin d'accès '{path}' est refusé.",
        'file_not_found': "Impossible de trouver le fichier '{path}'.",
        'not_recognized': "Le terme «{name}» n'est pas reconnu comme nom d'applet de commande, fonction, fichier de script ou programme "
                          "exécutable. Vérifiez l'orthographe du nom, ou si un chemin d'accès existe, vérifiez que le chemin d'accès est "
                          "correct et réessayez.",
        'revocation_schannel': "La fonction de révocation n'a pas pu vérifier la révocation car le serveur de révocation était "
                               "hors connexion.",
        'proxy_timeout': "Une tentative de connexion a échoué car le parti connecté n\u2019a pas répondu convenablement au-delà d\u2019une "
                         "certaine durée ou une connexion établie a échoué car l\u2019hôte de connexion n\u2019a pas répondu {address}:{port}",
        'aia': "[1]Accès aux informations de l\u2019autorité: Méthode d\u2019accès=Protocole de statut de certificat en ligne "
               "(1.3.6.1.5.5.7.48.1), Autre nom:URL={ocsp}, [2]Accès aux informations de l\u2019autorité: Méthode d\u2019accès=Émetteur "
               "d\u2019autorité de certification (1.3.6.1.5.5.7.48.2), Autre nom:URL={issuer}",
        'cdp': '[1]Point de distribution de la liste de révocation des certificats: Nom du point de distribution:Nom complet:URL={crl}',
        'netsh_direct': '\r\nParamètres du proxy WinHTTP actuels :\r\n\r\n    Accès direct (pas de serveur proxy).\r\n\r\n',
        'netsh_proxy': '\r\nParamètres du proxy WinHTTP actuels :\r\n\r\n    Serveur(s) proxy :  {proxy}\r\n'
                       '    Liste de contournement :  (aucune)\r\n\r\n',
        'category': 'ObjectNotFound',
    },
}


def message(culture: str, key: str, **values: t.Any) -> str:
    table = MESSAGES.get(culture, MESSAGES['en-US'])
    return table.get(key, MESSAGES['en-US'][key]).format(**values)


def sample(name: str) -> str:
    """A seed sample (stored once, with the unit tests' samples) without its PowerShell prompt line (that line is the
    console, not curl's output)."""
    with open(os.path.join(SAMPLES_DIR, 'seed-' + name), encoding='utf-8') as handle:
        lines = handle.read().splitlines(keepends=True)
    return ''.join(line for line in lines if not line.startswith('PS '))


# ---- curl.exe -v --max-time N https://<server>/ (curl 8.0.1, schannel) ----

def curl_output(kind: str, server: str, address: str, culture: str, elapsed_ms: int) -> tuple[int, str]:
    """(exit code, stderr+stdout) for one outcome."""
    if kind == 'ok' and server == 'tetra-defs.amp.cisco.com':
        return 0, sample('curl-tetra-defs-ok.txt')
    if kind == 'revocation_offline' and server == 'tetra-defs.amp.cisco.com':
        return 35, sample('curl-tetra-defs-revocation-offline.txt')
    head = '*   Trying %s:443...\n' % address
    connected = head + '* Connected to %s (%s) port 443 (#0)\n* schannel: disabled automatic use of client certificate\n' \
        '* ALPN: offers http/1.1\n' % (server, address)
    tail = '* Closing connection 0\n'
    if kind == 'no_such_host':
        return 6, '* Could not resolve host: %s\n%scurl: (6) Could not resolve host: %s\n' % (server, tail, server)
    if kind == 'refused':
        line = 'Failed to connect to %s port 443 after %d ms: Couldn\'t connect to server' % (server, elapsed_ms)
        return 7, '%s* connect to %s port 443 failed: Connection refused\n* %s\n%scurl: (7) %s\n' % (head, address, line, tail, line)
    if kind == 'timeout':
        line = 'Connection timed out after %d milliseconds' % elapsed_ms
        return 28, '%s* %s\n%scurl: (28) %s\n' % (head, line, tail, line)
    if kind in ('interception', 'untrusted_root'):
        line = 'schannel: SEC_E_UNTRUSTED_ROOT (0x80090325) - The certificate chain was issued by an authority that is not trusted.'
        return 60, '%s* %s\n%scurl: (60) %s\nMore details here: https://curl.se/docs/sslcerts.html\n\n' \
            'curl failed to verify the legitimacy of the server and therefore could not\nestablish a secure connection to it. ' \
            'To learn more about this situation and\nhow to fix it, please visit the web page mentioned above.\n' % (connected, line, tail, line)
    if kind == 'revocation_offline':
        line = 'schannel: next InitializeSecurityContext failed: Unknown error (0x80092013) - %s' % message(culture, 'revocation_schannel')
        return 35, '%s* %s\n%s* schannel: shutting down SSL/TLS connection with %s port 443\ncurl: (35) %s\n' % (connected, line, tail, server, line)
    if kind == 'reset':
        return 56, '%s* ALPN: server did not agree on a protocol. Uses default.\n* using HTTP/1.x\n> GET / HTTP/1.1\n> Host: %s\n' \
            '> User-Agent: curl/8.0.1\n> Accept: */*\n>\n* Recv failure: Connection was reset\n%s' \
            'curl: (56) Recv failure: Connection was reset\n' % (connected, server, tail)
    return 0, connected + '* ALPN: server did not agree on a protocol. Uses default.\n* using HTTP/1.x\n> GET / HTTP/1.1\n' \
        '> Host: %s\n> User-Agent: curl/8.0.1\n> Accept: */*\n>\n< HTTP/1.1 200 OK\n< Content-Length: 0\n< Connection: close\n<\n%s' % (server, tail)


def netsh_winhttp(culture: str, proxy: str | None) -> str:
    return message(culture, 'netsh_proxy', proxy=proxy) if proxy else message(culture, 'netsh_direct')


# ---- connector files ----

def local_xml(state: t.Any) -> str:
    """local.xml (root /config) in the scenario's layout."""
    connector = state.scenario['connector']
    proxy = state.scenario['policy']['proxy'] or {}
    defs = 'x:%d' % state.tetra_version
    if connector['local_xml_layout'] == 'defversions':
        engine = '<tetra><defversions>%s</defversions>%s</tetra>' % (defs, _tetra_times(state))
    else:
        stats = json.dumps({'engineDefinitions': [{'defVersion': defs, 'engine': 'tetra', 'lastUpdate': state.last_success}]},
                           separators=(',', ':'))
        engine = '<stats><definitions>%s</definitions></stats><tetra>%s</tetra>' % (escape(stats), _tetra_times(state))
    proxy_xml = ''.join('<%s>%s</%s>' % (k, escape(str(proxy[k])), k) for k in ('server', 'port', 'type') if k in proxy)
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n<config><agent><uuid>%s</uuid><engine>%s</engine></agent>'
            '<janus><business><uuid>%s</uuid></business><policy><uuid>%s</uuid></policy></janus>'
            '<install><switches><skiptetra>%d</skiptetra></switches></install><proxy>%s</proxy></config>\r\n'
            % (state.agent_uuid, engine, connector['business_uuid'], connector['policy_uuid'], int(connector['skiptetra']), proxy_xml))


def _tetra_times(state: t.Any) -> str:
    return ('<lastupdate>%d</lastupdate><lastsuccesstime>%d</lastsuccesstime><lastupdatechecked>%d</lastupdatechecked>'
            '<lasterror>%d</lasterror>' % (state.last_success, state.last_success, state.last_check, state.lasterror))


def policy_xml(state: t.Any) -> str:
    """policy.xml: the signed policy, config under Signature/Object in the xmldsig namespace."""
    policy, connector = state.scenario['policy'], state.scenario['connector']
    updater = policy['updater']
    log_level = 549755813887 if state.debug_logging else int(policy['log_level'])
    proxy = policy['proxy'] or {}
    proxy_xml = ''.join('<%s>%s</%s>' % (k, escape(str(proxy.get(k, ''))), k)
                        for k in ('server', 'port', 'type', 'authtype', 'username', 'password', 'pacloc', 'nolocalresolvehost'))
    ssl = ''.join('<%s>%s</%s>' % (k, v, k) for k, v in policy['ssl'].items())
    config = ('<config><janus><policy><uuid>%s</uuid><name>%s</name><serial_number>1742</serial_number></policy></janus>'
              '<agent><log><level>%d</level></log><scansettings><tetra><enable>%d</enable><updater><enable>%d</enable>'
              '<server>%s</server><interval>%d</interval></updater></tetra></scansettings></agent>'
              '<conn><ssl>%s</ssl></conn><proxy>%s</proxy></config>'
              % (connector['policy_uuid'], escape(connector['policy_name']), log_level, int(policy['tetra_enable']),
                 int(updater['enable']), escape(updater['server']), int(updater['interval']), ssl, proxy_xml))
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
            '<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
            '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><Reference URI="#policy">'
            '<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue>q1uGxX0Jm7wq3oC1YkE5V4yq2S0=</DigestValue>'
            '</Reference></SignedInfo><SignatureValue>Zm9yIHRoZSBsYWIgb25seQ==</SignatureValue><Object Id="policy">%s</Object>'
            '</Signature>\r\n' % config)


def posture_stdout(state: t.Any) -> str:
    """AmpCLI.exe posture: one line of JSON that starts like the seed's, engine part in one of three shapes."""
    connector = state.scenario['connector']
    version = state.installed_version() or ''
    short = '.'.join(version.split('.')[:3])
    fields: list[tuple[str, t.Any]] = [('agent_uuid', state.agent_uuid), ('connected', bool(connector['connected'])),
                                       ('connector_version', short)]
    updated = state.last_success
    shape = connector['posture_shape']
    if shape == 'engines_map':
        fields.append(('engines', {'tetra': {'enabled': bool(state.scenario['policy']['tetra_enable']),
                                             'definition_version': state.tetra_version, 'last_update': updated},
                                   'exprev': {'enabled': True, 'definition_version': 10321}}))
    elif shape == 'definitions_list':
        fields.append(('engine_definitions', [{'engine': 'TETRA 64 bit', 'version': str(state.tetra_version), 'updated': updated},
                                              {'engine': 'Exploit Prevention', 'version': '1.0.2.1102'}]))
    else:
        fields.append(('engines', [{'name': 'TETRA', 'version': str(state.tetra_version), 'status': 'enabled', 'last_update': updated},
                                   {'name': 'ClamAV', 'version': '0', 'status': 'disabled'}]))
    fields.extend([('policy', {'uuid': connector['policy_uuid'], 'name': connector['policy_name']}),
                   ('isolation', 'not_isolated'), ('debug_logging', state.debug_logging)])
    return '{ ' + ', '.join('%s: %s' % (json.dumps(k), json.dumps(v)) for k, v in fields) + ' }\r\n'


# ---- certificate chains (leaf first) ----

IDENTRUST_ROOT = {'subject': 'CN=IdenTrust Commercial Root CA 1, O=IdenTrust, C=US',
                  'thumbprint': 'DF717EAA4AD94EC9558499602D48DE5FBCF03A25'}


def chain(kind: str, server: str, culture: str) -> list[dict[str, t.Any]]:
    """The chain the endpoint receives: IdenTrust for Cisco's servers, a corporate issuer under interception."""
    aia = message(culture, 'aia', ocsp='http://commercial.ocsp.identrust.com',
                  issuer='http://validation.identrust.com/certs/hydrantidcao1.p7c')
    cdp = message(culture, 'cdp', crl='http://validation.identrust.com/crl/hydrantidcao1.crl')
    if kind == 'interception':
        return [
            _cert('CN=%s' % server, 'CN=Contoso Web Inspection CA, OU=Network Security, O=Contoso Ltd, C=US',
                  '8E2B51A4F06C9D3E7A15B0C48D92F3E6A1C07B54', '2026-10-01', '2027-01-01', None, None),
            _cert('CN=Contoso Web Inspection CA, OU=Network Security, O=Contoso Ltd, C=US', 'CN=Contoso Root CA 2019, O=Contoso Ltd, C=US',
                  '4F1C8A02D77E35B96A0E12C3B5D8F4A9E6071C2D', '2019-03-12', '2029-03-12', None, None),
        ]
    return [
        _cert('CN=%s, O=Cisco Systems Inc., L=San Jose, S=California, C=US' % server,
              'CN=HydrantID Server CA O1, OU=HydrantID Trusted Certificate Service, O=IdenTrust, C=US',
              'B1E3C4D5F60718293A4B5C6D7E8F90A1B2C3D4E5', '2026-03-02', '2027-03-02', aia, cdp),
        _cert('CN=HydrantID Server CA O1, OU=HydrantID Trusted Certificate Service, O=IdenTrust, C=US', IDENTRUST_ROOT['subject'],
              '2B2E2C1F8A4D6E5B3C7A9F0E1D2C3B4A59687766', '2019-12-12', '2029-12-11',
              message(culture, 'aia', ocsp='http://commercial.ocsp.identrust.com',
                      issuer='http://validation.identrust.com/roots/commercialrootca1.p7c'),
              message(culture, 'cdp', crl='http://validation.identrust.com/crl/commercialrootca1.crl')),
        _cert(IDENTRUST_ROOT['subject'], IDENTRUST_ROOT['subject'], IDENTRUST_ROOT['thumbprint'], '2014-01-16', '2034-01-16', None, None),
    ]


def _cert(subject: str, issuer: str, thumbprint: str, not_before: str, not_after: str,
          aia: str | None, cdp: str | None) -> dict[str, t.Any]:
    return {'subject': subject, 'issuer': issuer, 'thumbprint': thumbprint,
            'not_before': not_before + 'T00:00:00.0000000Z', 'not_after': not_after + 'T23:59:59.0000000Z',
            'aia_text': aia, 'crl_text': cdp}


def clixml_error(text: str) -> str:
    """An error record the way powershell.exe writes it to a redirected stderr."""
    body = text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('\r\n', '_x000D__x000A_')
    return '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>' % ''.join(
        '<S S="Error">%s_x000D__x000A_</S>' % line for line in body.split('_x000D__x000A_') if line)


def clixml_progress() -> str:
    """The 'Preparing modules for first use.' progress record that pollutes stderr."""
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0">'
            '<TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64>'
            '<PR N="Record"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T>'
            '<SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>')
