// authsvc, optional: the body of a signed request checked against its Content-Digest in nginx,
// before the backend sees it (nginx's auth_request never sends authsvc the body). authsvc has
// already checked that the app's message signature covers this Content-Digest header; this
// checks that the body is the one it digests (RFC 9530, sha-256 and sha-512, as authsvc does).
//
// Used by snippets/approov-body-digest.conf (docs/message-signing.md). On a match, the request
// goes on to the named location in $approov_digest_next; else the client gets the include's 401.

// WebCrypto's digests: njs's own crypto module has no SHA-512.
var HASHES = {'sha-256': 'SHA-256', 'sha-512': 'SHA-512'};
// One RFC 9651 dictionary member: a digest as a byte sequence, or (as some SDK versions send
// it) a string.
var MEMBER = /^\s*([a-z][a-z0-9_.*-]*)\s*=\s*(?::([A-Za-z0-9+\/=]*):|"([A-Za-z0-9+\/=]*)")\s*$/;

async function digestsMatch(field, body) {
    var checked = 0;
    var members = field.split(',');
    for (var i = 0; i < members.length; i++) {
        var member = MEMBER.exec(members[i]);
        if (member === null) {
            return false;
        }
        var hash = HASHES[member[1]];
        if (hash === undefined) {
            continue;  // RFC 9530: an algorithm the recipient does not know is ignored
        }
        var digest = await crypto.subtle.digest(hash, body);
        var expected = Buffer.from(digest).toString('base64');
        if ((member[2] !== undefined ? member[2] : member[3]) !== expected) {
            return false;
        }
        checked++;
    }
    return checked > 0;
}

function deny(r, reason) {
    r.warn('approov: ' + reason + ' request_id=' + r.variables.request_id);
    // authsvc allowed the headers and logged `ok`; nginx's access log (`approov=`) is the one
    // record of this refusal.
    r.variables.approov_reason = reason;
    r.headersOut['Content-Type'] = 'application/json';
    r.return(401, r.variables.approov_unauthorized_body);
}

async function check(r) {
    var next = r.variables.approov_digest_next;
    if (!next || next.charAt(0) !== '@') {
        r.error('approov: set $approov_digest_next to the named location of the backend');
        r.return(500);
        return;
    }
    var fields = r.rawHeadersIn.filter(function (h) {
        return h[0].toLowerCase() === 'content-digest';
    });
    if (fields.length > 1) {
        deny(r, 'content_digest_duplicated');
        return;
    }
    if (fields.length === 1) {
        // With client_body_in_single_buffer and a buffer as large as client_max_body_size, a
        // body is always in memory here; undefined means none was sent.
        var body = r.requestBuffer !== undefined ? r.requestBuffer : Buffer.alloc(0);
        if (!(await digestsMatch(fields[0][1], body))) {
            deny(r, 'content_digest_mismatch');
            return;
        }
    }
    // No Content-Digest: the app sent none and the signature covers none (authsvc refuses a
    // digest the signature does not cover), so there is no body claim to check.
    r.internalRedirect(next);
}

export default {check};
