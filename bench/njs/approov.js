// The in-nginx anchor: HS256 signature, exp and pay binding checked in njs, in the request's
// own rewrite phase (js_set + if), with no subrequest. The key is decoded once, at load.
import cr from 'crypto';

const SECRET = Buffer.from(
    'h+CX0tOzdAAR9l15bWAqvq7w9olk66daIH+Xk+IAHhVVHszjDzeGobzNnqyRze3lw/WVyWrc2gZfh3XXfBOmww==',
    'base64');

function allowed(r) {
    const token = r.headersIn['Approov-Token'];
    const binding = r.headersIn['Authorization'];
    if (!token || !binding) {
        return '0';
    }
    const parts = token.split('.');
    if (parts.length !== 3) {
        return '0';
    }
    try {
        const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
        if (header.alg !== 'HS256') {
            return '0';
        }
        const signature = cr.createHmac('sha256', SECRET)
            .update(parts[0] + '.' + parts[1]).digest('base64url');
        if (signature !== parts[2]) {
            return '0';
        }
        const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
        if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) {
            return '0';
        }
        const pay = cr.createHash('sha256').update(binding).digest('base64');
        return claims.pay === pay ? '1' : '0';
    } catch (e) {
        return '0';
    }
}

export default {allowed};
