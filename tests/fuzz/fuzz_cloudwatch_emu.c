// layer: emulator
/*
 * Fuzz target for the emulator's CloudWatch service (emulator/cloudwatch):
 * the first byte picks the operation (PutMetricData, GetMetricData,
 * PutMetricAlarm, DescribeAlarms, DeleteAlarms, or an unknown one), the rest
 * is the request body, handled as the router hands over a verified request.
 * Each input is also sent a second time after a PutMetricData of itself, so
 * reads meet a non-empty store. Whatever the input: no crash, an answer that
 * is either 200 with a JSON object or an error with a code and a JSON body.
 */
#include "emulator/cloudwatch.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void call(struct router_service *svc, const char *op, const char *body, size_t len)
{
    char target[96];
    snprintf(target, sizeof target, "GraniteServiceVersion20100801.%s", op);
    struct router_request req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.uri = "/";
    req.headers[0] = (struct sigv4_header){"X-Amz-Target", target};
    req.headers[1] = (struct sigv4_header){"Content-Type", "application/x-amz-json-1.0"};
    req.n_headers = 2;
    req.body = body;
    req.body_len = len;
    struct router_response resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    buf_init(&resp.body);
    svc->handle(svc->ctx, &req, &resp);
    json_t *doc = json_loadb(buf_cstr(&resp.body), resp.body.len, 0, NULL);
    if (!json_is_object(doc) || (resp.status != 200 && !resp.error_code[0]))
        abort();
    json_decref(doc);
    for (size_t i = 0; i < resp.n_headers; i++) {
        free(resp.header_names[i]);
        free(resp.header_values[i]);
    }
    json_decref(resp.log_extra);
    buf_clear(&resp.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ops[] = {"PutMetricData",  "GetMetricData", "PutMetricAlarm",
                                      "DescribeAlarms", "DeleteAlarms",  "ListMetrics"};
    if (size == 0)
        return 0;
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct scenario *sc = scenario_new(NULL, false, 0, errbuf);
    struct cloudwatch_emu *cw = cloudwatch_emu_new(sc, "us-east-1");
    struct router_service svc = cloudwatch_emu_service(cw);
    /* NUL-terminated, as the router hands bodies over. */
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    const char *op = ops[data[0] % (sizeof ops / sizeof *ops)];
    call(&svc, op, body, size - 1);
    call(&svc, "PutMetricData", body, size - 1);
    call(&svc, op, body, size - 1);
    free(body);
    cloudwatch_emu_free(cw);
    scenario_free(sc);
    return 0;
}
