/*
 * version.h - firmware identification for the SN-200 sensor node.
 */
#ifndef SN_VERSION_H
#define SN_VERSION_H

#define FW_NAME           "sensord"
#define FW_VERSION_MAJOR  1
#define FW_VERSION_MINOR  4
#define FW_VERSION_PATCH  2
#define FW_VERSION_STR    "1.4.2"
#define FW_BUILD_TAG      "rel-2024.03"
#define FW_BOARD          "SN-200 rev C"
#define FW_COPYRIGHT      "(c) sensor-node project, MIT licensed"

#define FW_BANNER FW_NAME " v" FW_VERSION_STR " [" FW_BUILD_TAG "] board " FW_BOARD

/* Packed version word as stored in the image header: 0x00MMmmpp */
#define FW_VERSION_WORD \
    (((unsigned long)FW_VERSION_MAJOR << 16) | \
     ((unsigned long)FW_VERSION_MINOR << 8) | \
     (unsigned long)FW_VERSION_PATCH)

#endif /* SN_VERSION_H */
