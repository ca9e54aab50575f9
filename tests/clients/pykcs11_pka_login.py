#!/usr/bin/python3
"""A PKA login with the module's vendor user type through PyKCS11, as a
user's script does it (include/picohsm_pkcs11.h gives the constants):
C_Login(CKU_PICOHSM_PKA, authenticator PIN) once per authenticator, the
progress read from the token's CKO_PICOHSM_PKA_STATUS object after each
round, C_Login(CKU_USER, token PIN) when the module answers
CKR_PICOHSM_PIN_NEEDED; then a P-256 key pair and a signature.

Usage: pykcs11_pka_login.py MODULE READER AUTH_PIN TOKEN_PIN|- KEY_ID
Prints one line per step (`before n m authenticated`, `pka RV n m
authenticated`, `user RV`), then the key's EC parameters and point, the
data and the signature (hex), for the caller to check with openssl.
"""
import sys

from PyKCS11 import (CKA_CLASS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ID, CKA_KEY_TYPE,
                     CKA_PRIVATE, CKA_SIGN, CKA_TOKEN, CKA_VERIFY, CKF_RW_SESSION,
                     CKF_SERIAL_SESSION, CKK_EC, CKM_ECDSA_SHA256, CKM_EC_KEY_PAIR_GEN,
                     CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKU_USER, Mechanism, PyKCS11Error,
                     PyKCS11Lib)

CKU_PICOHSM_PKA = 0x80504B41
CKR_PICOHSM_PKA_MORE_NEEDED = 0x80504B01
CKR_PICOHSM_PIN_NEEDED = 0x80504B02
CKO_PICOHSM_PKA_STATUS = 0x80504B41
CKA_PICOHSM_PKA_TOTAL = 0x80504B11
CKA_PICOHSM_PKA_REQUIRED = 0x80504B13
CKA_PICOHSM_PKA_AUTHENTICATED = 0x80504B14
# DER of the OID prime256v1.
P256 = bytes.fromhex("06082a8648ce3d030107")

module, reader, auth_pin, token_pin, key_id = sys.argv[1:6]
lib = PyKCS11Lib()
lib.load(module)
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getSlotInfo(s).slotDescription.strip() == reader)
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)


def progress():
    """(n, m, authenticated) from the PKA status object."""
    status = session.findObjects([(CKA_CLASS, CKO_PICOHSM_PKA_STATUS)])
    assert len(status) == 1, status
    values = session.getAttributeValue(
        status[0],
        [CKA_PICOHSM_PKA_TOTAL, CKA_PICOHSM_PKA_REQUIRED, CKA_PICOHSM_PKA_AUTHENTICATED],
        allAsBinary=True)
    return [int.from_bytes(bytes(v), sys.byteorder) for v in values]


def show(*words):
    print(" ".join(str(w) for w in words), flush=True)


show("before", *progress())
while True:
    try:
        session.login(auth_pin, user_type=CKU_PICOHSM_PKA)
        show("pka", "CKR_OK", *progress())
        break
    except PyKCS11Error as e:
        if e.value == CKR_PICOHSM_PKA_MORE_NEEDED:
            show("pka", "CKR_PICOHSM_PKA_MORE_NEEDED", *progress())
            continue
        if e.value == CKR_PICOHSM_PIN_NEEDED:
            show("pka", "CKR_PICOHSM_PIN_NEEDED", *progress())
            session.login(token_pin, user_type=CKU_USER)
            show("user", "CKR_OK")
            break
        raise

kid = bytes.fromhex(key_id)
public, private = session.generateKeyPair(
    [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
     (CKA_VERIFY, True), (CKA_EC_PARAMS, P256), (CKA_ID, kid)],
    [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
     (CKA_PRIVATE, True), (CKA_SIGN, True), (CKA_ID, kid)],
    mecha=Mechanism(CKM_EC_KEY_PAIR_GEN))
data = b"signed after a PKA login from PyKCS11"
signature = bytes(session.sign(private, data, Mechanism(CKM_ECDSA_SHA256)))
params, point = session.getAttributeValue(public, [CKA_EC_PARAMS, CKA_EC_POINT], allAsBinary=True)
session.logout()
session.closeSession()
show("ec_params", bytes(params).hex())
show("ec_point", bytes(point).hex())
show("data", data.hex())
show("signature", signature.hex())
