// layer: emulator
/*
 * Fuzz target for the emulator's SNS Publish (emulator/sns): the input is the
 * form body of a verified POST /, routed only when the service's match takes
 * it. Whatever the input: no crash, and an answer that is 200 with a
 * PublishResponse or an error with a code inside an ErrorResponse.
 */
#include "emulator/sns.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *sc = scenario_new(NULL, false, 0, errbuf);
    struct sns_emu *s = sns_emu_new(sc, "us-east-1");
    struct router_service svc = sns_emu_service(s);
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = '\0';
    struct router_request req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.uri = "/";
    req.headers[0] =
        (struct sigv4_header){"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"};
    req.n_headers = 1;
    req.body = body;
    req.body_len = size;
    snprintf(req.request_id, sizeof req.request_id, "00000000-0000-4000-8000-000000000000");
    if (svc.match(svc.ctx, &req)) {
        struct router_response resp;
        memset(&resp, 0, sizeof resp);
        resp.status = 200;
        buf_init(&resp.body);
        svc.handle(svc.ctx, &req, &resp);
        const char *text = buf_cstr(&resp.body);
        if (resp.status == 200 ? !strstr(text, "<PublishResponse")
                               : !resp.error_code[0] || !strstr(text, "<ErrorResponse"))
            abort();
        for (size_t i = 0; i < resp.n_headers; i++) {
            free(resp.header_names[i]);
            free(resp.header_values[i]);
        }
        json_decref(resp.log_extra);
        buf_clear(&resp.body);
    }
    free(body);
    sns_emu_free(s);
    scenario_free(sc);
    return 0;
}
