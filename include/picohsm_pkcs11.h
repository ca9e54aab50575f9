/*
 * picohsm_pkcs11.h: the vendor constants of libpicohsm_pkcs11.so.
 *
 * Include a PKCS#11 header first (p11-kit's <p11-kit/pkcs11.h>, OASIS'
 * pkcs11.h, ...). The values are plain unsigned long literals, so this file
 * needs nothing from it; the module's Rust sources hold the same numbers
 * (src/vendor.rs) and a test keeps the two equal.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#ifndef PICOHSM_PKCS11_H
#define PICOHSM_PKCS11_H

/* ---- User type ------------------------------------------------------------
 * C_Login(hSession, CKU_PICOHSM_PKA, pin, len): one round of Public Key
 * Authentication (docs/protocol.md §6.7). The module asks the
 * primary token for a challenge, has an authenticator token sign it (pin
 * unlocks the authenticator, not the primary) and sends the signature with
 * EXTERNAL AUTHENTICATE. With an m-of-n scheme, call it once per
 * authenticator; until the quorum is reached it returns
 * CKR_PICOHSM_PKA_MORE_NEEDED. On a token that also has a user PIN, finish
 * with C_Login(CKU_USER, user PIN).
 */
#define CKU_PICOHSM_PKA 0x80504B41UL /* CKU_VENDOR_DEFINED | "PKA" */

/* ---- Return values ---------------------------------------------------------
 * Each names one reason a PKA login did not complete; the module also logs
 * a line that says which.
 */
/* This authenticator was accepted; more are needed for the m-of-n quorum.
 * The login is not complete yet (sessions stay public). */
#define CKR_PICOHSM_PKA_MORE_NEEDED          0x80504B01UL
/* The quorum is reached, but the token also has a user PIN: finish with
 * C_Login(CKU_USER, PIN). */
#define CKR_PICOHSM_PIN_NEEDED               0x80504B02UL
/* No authenticator was found (none configured is connected, or no
 * connected token holds a key registered on this primary). */
#define CKR_PICOHSM_AUTHENTICATOR_MISSING    0x80504B03UL
/* The authenticator refused its PIN (the authenticator counts the try). */
#define CKR_PICOHSM_AUTHENTICATOR_PIN_INCORRECT 0x80504B04UL
/* The authenticator's PIN is blocked. */
#define CKR_PICOHSM_AUTHENTICATOR_PIN_LOCKED 0x80504B05UL
/* The authenticator's key is not registered on this primary (MSE SET AT
 * refused its CHR). */
#define CKR_PICOHSM_KEY_NOT_REGISTERED       0x80504B06UL
/* The primary refused the signature (EXTERNAL AUTHENTICATE 6300 / 6982):
 * wrong key, or the challenge expired. */
#define CKR_PICOHSM_SIGNATURE_REFUSED        0x80504B07UL
/* The token has no PKA set up. */
#define CKR_PICOHSM_PKA_NOT_CONFIGURED       0x80504B08UL
/* This authenticator's key has already been counted in this round. */
#define CKR_PICOHSM_ALREADY_AUTHENTICATED    0x80504B09UL
/* C_Login(CKU_USER) on a PKA + PIN token whose authenticators are found on
 * their own (none named in the settings) got one secret: type
 * <token PIN><separator><authenticator PIN> (separator ':' unless the
 * settings say otherwise). The token's PIN never goes to another card. */
#define CKR_PICOHSM_SECRETS_NOT_SPLIT        0x80504B0AUL
/* The primary's device certificate chain (EF 2F02) does not verify up to
 * a trusted root (settings: device-roots, allow-test-chains); the module
 * has an authenticator sign nothing for it. */
#define CKR_PICOHSM_DEVICE_UNTRUSTED         0x80504B0BUL
/* C_Initialize: a settings file, or its directory, can be changed by
 * another user (writable by group/others, or owned by another user). */
#define CKR_PICOHSM_SETTINGS_INSECURE        0x80504B0CUL
/* C_Login(CKU_USER, NULL) needs a PIN the module cannot get: no pinentry
 * configured, and the token or its authenticator wants one. */
#define CKR_PICOHSM_NO_PIN_SOURCE            0x80504B0DUL

/* ---- PKA status object ------------------------------------------------------
 * A token with PKA shows one public object of class CKO_PICOHSM_PKA_STATUS
 * whose CK_ULONG attributes give the PKA state as the card reports it
 * (MANAGE PKA status, docs/protocol.md §6.3): n, the keys still
 * missing before the scheme is complete, m, and the keys authenticated in
 * the current round. The values are read from the card at each call.
 * Read it between C_Login(CKU_PICOHSM_PKA) calls to show progress.
 */
#define CKO_PICOHSM_PKA_STATUS          0x80504B41UL /* CKO_VENDOR_DEFINED | "PKA" */
#define CKA_PICOHSM_PKA_TOTAL           0x80504B11UL /* n: public keys in the scheme */
#define CKA_PICOHSM_PKA_MISSING         0x80504B12UL /* keys still to register */
#define CKA_PICOHSM_PKA_REQUIRED        0x80504B13UL /* m: keys per login */
#define CKA_PICOHSM_PKA_AUTHENTICATED   0x80504B14UL /* accepted this round */

#endif /* PICOHSM_PKCS11_H */
