/*
 * PKA login from C: the vendor user type of libpicohsm_pkcs11.so, one
 * C_Login per authenticator with the progress read between rounds, the
 * token's PIN if it has one, then an ECDSA signature.
 *
 *   cc -I include -I /usr/include/p11-kit-1 examples/pka_login.c -ldl \
 *      -o pka_login
 *   ./pka_login MODULE READER AUTHENTICATOR_PIN [TOKEN_PIN]
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <p11-kit/pkcs11.h>
#include <picohsm_pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;

/* The PKA status object's attribute `type` (CK_ULONG). */
static CK_ULONG pka_value(CK_SESSION_HANDLE s, CK_ATTRIBUTE_TYPE type)
{
    CK_OBJECT_CLASS cls = CKO_PICOHSM_PKA_STATUS;
    CK_ATTRIBUTE find = { CKA_CLASS, &cls, sizeof cls };
    CK_OBJECT_HANDLE h;
    CK_ULONG n = 0, v = 0;
    CK_ATTRIBUTE get = { type, &v, sizeof v };

    if (p11->C_FindObjectsInit(s, &find, 1) != CKR_OK)
        return 0;
    p11->C_FindObjects(s, &h, 1, &n);
    p11->C_FindObjectsFinal(s);
    if (n == 1)
        p11->C_GetAttributeValue(s, h, &get, 1);
    return v;
}

static void show_progress(CK_SESSION_HANDLE s)
{
    printf("PKA: %lu authenticated public key(s) in %lu of %lu scheme\n",
           pka_value(s, CKA_PICOHSM_PKA_AUTHENTICATED),
           pka_value(s, CKA_PICOHSM_PKA_REQUIRED),
           pka_value(s, CKA_PICOHSM_PKA_TOTAL));
}

/* The slot whose description starts with `reader`. */
static int find_slot(const char *reader, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64, i;

    if (p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    for (i = 0; i < n; i++) {
        CK_SLOT_INFO info;
        if (p11->C_GetSlotInfo(slots[i], &info) == CKR_OK &&
            strncmp((const char *)info.slotDescription, reader, strlen(reader)) == 0) {
            *out = slots[i];
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
    CK_C_INITIALIZE_ARGS init = { 0 };
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE s;
    CK_RV rv;
    void *lib;

    if (argc < 4) {
        fprintf(stderr, "usage: %s MODULE READER AUTHENTICATOR_PIN [TOKEN_PIN]\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW);
    if (!lib || !(get_list = dlsym(lib, "C_GetFunctionList")) || get_list(&p11) != CKR_OK) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    init.flags = CKF_OS_LOCKING_OK;
    if (p11->C_Initialize(&init) != CKR_OK || find_slot(argv[2], &slot) != 0) {
        fprintf(stderr, "no token in a reader named %s\n", argv[2]);
        return 1;
    }
    if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
        return 1;
    show_progress(s);
    for (;;) {
        rv = p11->C_Login(s, CKU_PICOHSM_PKA, (CK_UTF8CHAR_PTR)argv[3], strlen(argv[3]));
        if (rv == CKR_OK) {
            printf("PKA: logged in\n");
            break;
        }
        if (rv == CKR_PICOHSM_PKA_MORE_NEEDED) {
            show_progress(s);
            continue;
        }
        if (rv == CKR_PICOHSM_PIN_NEEDED && argc > 4) {
            show_progress(s);
            rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)argv[4], strlen(argv[4]));
            if (rv != CKR_OK) {
                fprintf(stderr, "PIN: CK_RV 0x%lx\n", rv);
                return 1;
            }
            printf("PIN: verified\n");
            break;
        }
        fprintf(stderr, "PKA login: CK_RV 0x%lx\n", rv);
        return 1;
    }

    {
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE t = { CKA_CLASS, &cls, sizeof cls };
        CK_OBJECT_HANDLE key;
        CK_ULONG n = 0, sig_len = 0, i;
        CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
        CK_BYTE digest[32], sig[256];

        memset(digest, 0x5A, sizeof digest);
        p11->C_FindObjectsInit(s, &t, 1);
        p11->C_FindObjects(s, &key, 1, &n);
        p11->C_FindObjectsFinal(s);
        if (n != 1) {
            fprintf(stderr, "logged in, but no private key\n");
            return 1;
        }
        sig_len = sizeof sig;
        if (p11->C_SignInit(s, &mech, key) != CKR_OK ||
            (rv = p11->C_Sign(s, digest, sizeof digest, sig, &sig_len)) != CKR_OK) {
            fprintf(stderr, "sign failed\n");
            return 1;
        }
        printf("signature: ");
        for (i = 0; i < sig_len; i++)
            printf("%02x", sig[i]);
        printf("\n");
    }
    p11->C_CloseSession(s);
    p11->C_Finalize(NULL);
    return 0;
}
