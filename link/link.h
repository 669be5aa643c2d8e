/* link/: the offload link, the wire between a robot and its GPU peer.
 *
 * One library for both ends of it:
 *   link_codec.h   how a cut tensor travels: f32 / f16 / i8, optionally
 *                  zstd or lz4 (link_encode, link_decode), with error bounds;
 *   peer_proto.h   the KServe v2 messages that carry cut tensors, request
 *                  and response, built and parsed here for both sides (the
 *                  JSON framing is api/'s one v2 codec, api.h);
 *   peer_v2.h      the peer's reading of a request the API has parsed;
 *   peer_client.h  the robot's libcurl client for one peer;
 *   linkest.h      the link estimator (goodput, RTT) fed by the client;
 *   wifi.h         Wi-Fi telemetry of one interface.
 * Each header is that module's front door; this one gathers them and the
 * few things the modules share.
 *
 * Functions return 0 or a negative errno; those that take (err, errlen)
 * put a sentence there on failure. Nothing here includes daemon/. */
#ifndef SPLITD_LINK_H
#define SPLITD_LINK_H

#include <stdint.h>

#include "link_codec.h"
#include "linkest.h"
#include "peer_client.h"
#include "peer_proto.h"
#include "peer_v2.h"
#include "wifi.h"

/* CLOCK_MONOTONIC in ns: the clock of every time the link measures
 * (the client's transfer phases, backoff deadlines, band marks). */
int64_t link_now_ns(void);

#endif
