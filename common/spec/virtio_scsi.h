/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-scsi (virtio 1.2 section 5.6): feature bits, config layout, request / control / event
 * layouts and their codes, shared by the device (devices/virtio_scsi.h) and the test guest's
 * driver. Definitions only.
 */
#ifndef VIREO_COMMON_SPEC_VIRTIO_SCSI_H
#define VIREO_COMMON_SPEC_VIRTIO_SCSI_H

#define VIRTIO_ID_SCSI 8

#define VIRTIO_SCSI_F_INOUT 0
#define VIRTIO_SCSI_F_HOTPLUG 1
#define VIRTIO_SCSI_F_CHANGE 2
#define VIRTIO_SCSI_F_T10_PI 3

/* struct virtio_scsi_config, byte offsets (all little endian) */
#define VIRTIO_SCSI_CFG_NUM_QUEUES 0      /* le32: request queues */
#define VIRTIO_SCSI_CFG_SEG_MAX 4         /* le32 */
#define VIRTIO_SCSI_CFG_MAX_SECTORS 8     /* le32 */
#define VIRTIO_SCSI_CFG_CMD_PER_LUN 12    /* le32 */
#define VIRTIO_SCSI_CFG_EVENT_INFO_SIZE 16 /* le32 */
#define VIRTIO_SCSI_CFG_SENSE_SIZE 20     /* le32, driver-writable */
#define VIRTIO_SCSI_CFG_CDB_SIZE 24       /* le32, driver-writable */
#define VIRTIO_SCSI_CFG_MAX_CHANNEL 28    /* le16 */
#define VIRTIO_SCSI_CFG_MAX_TARGET 30     /* le16 */
#define VIRTIO_SCSI_CFG_MAX_LUN 32        /* le32 */
#define VIRTIO_SCSI_CFG_LEN 36

#define VIRTIO_SCSI_CDB_DEFAULT_SIZE 32
#define VIRTIO_SCSI_SENSE_DEFAULT_SIZE 96

/*
 * Queues: 0 control, 1 event, 2.. request. A request: device-readable lun[8], le64 id,
 * u8 task_attr, prio, crn, cdb[cdb_size], data-out; device-writable le32 sense_len,
 * le32 residual, le16 status_qualifier, u8 status, u8 response, sense[sense_size], data-in.
 */
#define VIRTIO_SCSI_REQ_HDR_SIZE 19  /* without the CDB */
#define VIRTIO_SCSI_RESP_HDR_SIZE 12 /* without the sense bytes */

/* response codes */
#define VIRTIO_SCSI_S_OK 0
#define VIRTIO_SCSI_S_FUNCTION_COMPLETE 0
#define VIRTIO_SCSI_S_OVERRUN 1
#define VIRTIO_SCSI_S_ABORTED 2
#define VIRTIO_SCSI_S_BAD_TARGET 3
#define VIRTIO_SCSI_S_RESET 4
#define VIRTIO_SCSI_S_BUSY 5
#define VIRTIO_SCSI_S_TRANSPORT_FAILURE 6
#define VIRTIO_SCSI_S_TARGET_FAILURE 7
#define VIRTIO_SCSI_S_NEXUS_FAILURE 8
#define VIRTIO_SCSI_S_FAILURE 9
#define VIRTIO_SCSI_S_FUNCTION_SUCCEEDED 10
#define VIRTIO_SCSI_S_FUNCTION_REJECTED 11
#define VIRTIO_SCSI_S_INCORRECT_LUN 12

/* task attributes */
#define VIRTIO_SCSI_S_SIMPLE 0
#define VIRTIO_SCSI_S_ORDERED 1
#define VIRTIO_SCSI_S_HEAD 2
#define VIRTIO_SCSI_S_ACA 3

/* control queue: le32 type first */
#define VIRTIO_SCSI_T_TMF 0
#define VIRTIO_SCSI_T_AN_QUERY 1
#define VIRTIO_SCSI_T_AN_SUBSCRIBE 2

/* TMF: readable le32 type, le32 subtype, lun[8], le64 id; writable u8 response */
#define VIRTIO_SCSI_TMF_SIZE 24
#define VIRTIO_SCSI_T_TMF_ABORT_TASK 0
#define VIRTIO_SCSI_T_TMF_ABORT_TASK_SET 1
#define VIRTIO_SCSI_T_TMF_CLEAR_ACA 2
#define VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET 3
#define VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET 4
#define VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET 5
#define VIRTIO_SCSI_T_TMF_QUERY_TASK 6
#define VIRTIO_SCSI_T_TMF_QUERY_TASK_SET 7

/* AN query / subscribe: readable le32 type, lun[8], le32 event_requested; writable
 * le32 event_actual, u8 response */
#define VIRTIO_SCSI_AN_SIZE 16
#define VIRTIO_SCSI_AN_RESP_SIZE 5

/* event queue: writable le32 event, lun[8], le32 reason */
#define VIRTIO_SCSI_EVENT_SIZE 16
#define VIRTIO_SCSI_T_NO_EVENT 0
#define VIRTIO_SCSI_T_TRANSPORT_RESET 1
#define VIRTIO_SCSI_T_ASYNC_NOTIFY 2
#define VIRTIO_SCSI_T_PARAM_CHANGE 3
#define VIRTIO_SCSI_T_EVENTS_MISSED 0x80000000u
#define VIRTIO_SCSI_EVT_RESET_HARD 0
#define VIRTIO_SCSI_EVT_RESET_RESCAN 1
#define VIRTIO_SCSI_EVT_RESET_REMOVED 2

#endif
