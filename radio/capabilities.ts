// What a virtual controller claims, in one table: the LE features it reports and the HCI
// commands it implements, each with its Supported Commands bit (Core Vol 4 Part E §6.27)
// and the feature it needs. The controller builds both its Read Local Supported Commands
// bitmap and its command gate from this table, so the bitmap, the features and what the
// controller answers cannot disagree: a command of a feature the controller does not claim
// is neither listed nor answered (Unknown HCI Command), as on a real controller built
// without it.
import { Op } from './hci';

/** LE feature bits (Vol 6 Part B §4.6) this controller may claim. */
export const LeFeature = {
  CONNECTION_PARAMETERS_REQUEST: 1,
  DATA_LENGTH_EXTENSION: 5,
  LE_2M_PHY: 8,
  EXTENDED_ADVERTISING: 12,
} as const;
export type LeFeatureBit = (typeof LeFeature)[keyof typeof LeFeature];

export interface CommandCapability {
  op: number;
  name: string;
  /** Supported Commands octet and bit. */
  octet: number;
  bit: number;
  /** The LE feature without which the command does not exist on this controller. */
  requires?: LeFeatureBit;
  /** Answered with Command Status, then a completion event (the rest: Command Complete). */
  status?: true;
}

const FEATURE_CPR = LeFeature.CONNECTION_PARAMETERS_REQUEST;
const FEATURE_DLE = LeFeature.DATA_LENGTH_EXTENSION;
const FEATURE_2M = LeFeature.LE_2M_PHY;
const FEATURE_EXT_ADV = LeFeature.EXTENDED_ADVERTISING;

/**
 * Every command the controller implements. Deliberately absent: LE encryption (Start
 * Encryption, LTK replies — no SMP/LTK model, and LE Encryption is not a claimed feature),
 * periodic advertising, the resolving list, test modes.
 */
export const COMMANDS: readonly CommandCapability[] = [
  { op: Op.DISCONNECT, name: 'Disconnect', octet: 0, bit: 5, status: true },
  { op: Op.READ_REMOTE_VERSION, name: 'Read Remote Version Information', octet: 2, bit: 7, status: true },
  { op: Op.SET_EVENT_MASK, name: 'Set Event Mask', octet: 5, bit: 6 },
  { op: Op.RESET, name: 'Reset', octet: 5, bit: 7 },
  { op: Op.SET_EVENT_FILTER, name: 'Set Event Filter', octet: 6, bit: 0 },
  { op: Op.READ_TX_POWER_LEVEL, name: 'Read Transmit Power Level', octet: 10, bit: 2 },
  { op: Op.READ_LOCAL_VERSION, name: 'Read Local Version Information', octet: 14, bit: 3 },
  { op: Op.READ_LOCAL_FEATURES, name: 'Read Local Supported Features', octet: 14, bit: 5 },
  { op: Op.READ_BUFFER_SIZE, name: 'Read Buffer Size', octet: 14, bit: 7 },
  { op: Op.READ_BD_ADDR, name: 'Read BD_ADDR', octet: 15, bit: 1 },
  { op: Op.READ_RSSI, name: 'Read RSSI', octet: 15, bit: 5 },
  { op: Op.SET_EVENT_MASK_PAGE_2, name: 'Set Event Mask Page 2', octet: 22, bit: 2 },
  { op: Op.READ_LE_HOST_SUPPORTED, name: 'Read LE Host Support', octet: 24, bit: 5 },
  { op: Op.WRITE_LE_HOST_SUPPORTED, name: 'Write LE Host Support', octet: 24, bit: 6 },
  { op: Op.LE_SET_EVENT_MASK, name: 'LE Set Event Mask', octet: 25, bit: 0 },
  { op: Op.LE_READ_BUFFER_SIZE, name: 'LE Read Buffer Size', octet: 25, bit: 1 },
  { op: Op.LE_READ_LOCAL_FEATURES, name: 'LE Read Local Supported Features', octet: 25, bit: 2 },
  { op: Op.LE_SET_RANDOM_ADDRESS, name: 'LE Set Random Address', octet: 25, bit: 4 },
  { op: Op.LE_SET_ADV_PARAMS, name: 'LE Set Advertising Parameters', octet: 25, bit: 5 },
  { op: Op.LE_READ_ADV_TX_POWER, name: 'LE Read Advertising Physical Channel Tx Power', octet: 25, bit: 6 },
  { op: Op.LE_SET_ADV_DATA, name: 'LE Set Advertising Data', octet: 25, bit: 7 },
  { op: Op.LE_SET_SCAN_RSP_DATA, name: 'LE Set Scan Response Data', octet: 26, bit: 0 },
  { op: Op.LE_SET_ADV_ENABLE, name: 'LE Set Advertising Enable', octet: 26, bit: 1 },
  { op: Op.LE_SET_SCAN_PARAMS, name: 'LE Set Scan Parameters', octet: 26, bit: 2 },
  { op: Op.LE_SET_SCAN_ENABLE, name: 'LE Set Scan Enable', octet: 26, bit: 3 },
  { op: Op.LE_CREATE_CONNECTION, name: 'LE Create Connection', octet: 26, bit: 4, status: true },
  { op: Op.LE_CREATE_CONNECTION_CANCEL, name: 'LE Create Connection Cancel', octet: 26, bit: 5 },
  { op: Op.LE_READ_ACCEPT_LIST_SIZE, name: 'LE Read Filter Accept List Size', octet: 26, bit: 6 },
  { op: Op.LE_CLEAR_ACCEPT_LIST, name: 'LE Clear Filter Accept List', octet: 26, bit: 7 },
  { op: Op.LE_CONNECTION_UPDATE, name: 'LE Connection Update', octet: 27, bit: 2, status: true },
  { op: Op.LE_READ_REMOTE_FEATURES, name: 'LE Read Remote Features', octet: 27, bit: 5, status: true },
  { op: Op.LE_RAND, name: 'LE Rand', octet: 27, bit: 7 },
  { op: Op.LE_READ_SUPPORTED_STATES, name: 'LE Read Supported States', octet: 28, bit: 3 },
  { op: Op.LE_REMOTE_CONN_PARAM_REPLY, name: 'LE Remote Connection Parameter Request Reply', octet: 33, bit: 4, requires: FEATURE_CPR },
  { op: Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY, name: 'LE Remote Connection Parameter Request Negative Reply', octet: 33, bit: 5, requires: FEATURE_CPR },
  { op: Op.LE_SET_DATA_LENGTH, name: 'LE Set Data Length', octet: 33, bit: 6, requires: FEATURE_DLE },
  { op: Op.LE_READ_SUGGESTED_DATA_LENGTH, name: 'LE Read Suggested Default Data Length', octet: 33, bit: 7, requires: FEATURE_DLE },
  { op: Op.LE_WRITE_SUGGESTED_DATA_LENGTH, name: 'LE Write Suggested Default Data Length', octet: 34, bit: 0, requires: FEATURE_DLE },
  { op: Op.LE_READ_MAX_DATA_LENGTH, name: 'LE Read Maximum Data Length', octet: 35, bit: 3, requires: FEATURE_DLE },
  { op: Op.LE_READ_PHY, name: 'LE Read PHY', octet: 35, bit: 4, requires: FEATURE_2M },
  { op: Op.LE_SET_DEFAULT_PHY, name: 'LE Set Default PHY', octet: 35, bit: 5, requires: FEATURE_2M },
  { op: Op.LE_SET_PHY, name: 'LE Set PHY', octet: 35, bit: 6, requires: FEATURE_2M, status: true },
  { op: Op.LE_SET_ADV_SET_RANDOM_ADDRESS, name: 'LE Set Advertising Set Random Address', octet: 36, bit: 1, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_ADV_PARAMS, name: 'LE Set Extended Advertising Parameters', octet: 36, bit: 2, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_ADV_DATA, name: 'LE Set Extended Advertising Data', octet: 36, bit: 3, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_SCAN_RSP_DATA, name: 'LE Set Extended Scan Response Data', octet: 36, bit: 4, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_ADV_ENABLE, name: 'LE Set Extended Advertising Enable', octet: 36, bit: 5, requires: FEATURE_EXT_ADV },
  { op: Op.LE_READ_MAX_ADV_DATA_LENGTH, name: 'LE Read Maximum Advertising Data Length', octet: 36, bit: 6, requires: FEATURE_EXT_ADV },
  { op: Op.LE_READ_NUM_ADV_SETS, name: 'LE Read Number of Supported Advertising Sets', octet: 36, bit: 7, requires: FEATURE_EXT_ADV },
  { op: Op.LE_REMOVE_ADV_SET, name: 'LE Remove Advertising Set', octet: 37, bit: 0, requires: FEATURE_EXT_ADV },
  { op: Op.LE_CLEAR_ADV_SETS, name: 'LE Clear Advertising Sets', octet: 37, bit: 1, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_SCAN_PARAMS, name: 'LE Set Extended Scan Parameters', octet: 37, bit: 5, requires: FEATURE_EXT_ADV },
  { op: Op.LE_SET_EXT_SCAN_ENABLE, name: 'LE Set Extended Scan Enable', octet: 37, bit: 6, requires: FEATURE_EXT_ADV },
  { op: Op.LE_EXT_CREATE_CONNECTION, name: 'LE Extended Create Connection', octet: 37, bit: 7, requires: FEATURE_EXT_ADV, status: true },
];

/**
 * Commands the Core spec makes mandatory for a controller that claims a feature (Vol 4
 * Part E §3, the "C" conditions of the command table). The controller conformance test
 * checks that each claimed feature brings all of them.
 */
export const MANDATORY_WITH_FEATURE: Readonly<Record<LeFeatureBit, readonly number[]>> = {
  [FEATURE_CPR]: [Op.LE_REMOTE_CONN_PARAM_REPLY, Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY],
  [FEATURE_DLE]: [Op.LE_SET_DATA_LENGTH, Op.LE_READ_SUGGESTED_DATA_LENGTH, Op.LE_WRITE_SUGGESTED_DATA_LENGTH, Op.LE_READ_MAX_DATA_LENGTH],
  [FEATURE_2M]: [Op.LE_READ_PHY, Op.LE_SET_DEFAULT_PHY, Op.LE_SET_PHY],
  [FEATURE_EXT_ADV]: [
    Op.LE_SET_ADV_SET_RANDOM_ADDRESS,
    Op.LE_SET_EXT_ADV_PARAMS,
    Op.LE_SET_EXT_ADV_DATA,
    Op.LE_SET_EXT_SCAN_RSP_DATA,
    Op.LE_SET_EXT_ADV_ENABLE,
    Op.LE_READ_MAX_ADV_DATA_LENGTH,
    Op.LE_READ_NUM_ADV_SETS,
    Op.LE_REMOVE_ADV_SET,
    Op.LE_CLEAR_ADV_SETS,
    Op.LE_SET_EXT_SCAN_PARAMS,
    Op.LE_SET_EXT_SCAN_ENABLE,
    Op.LE_EXT_CREATE_CONNECTION,
  ],
};

/** The LE features a controller configured this way claims. */
export function claimedFeatures(options: { extendedAdvertising: boolean }): Set<LeFeatureBit> {
  const features = new Set<LeFeatureBit>([FEATURE_CPR, FEATURE_DLE, FEATURE_2M]);
  if (options.extendedAdvertising) features.add(FEATURE_EXT_ADV);
  return features;
}

export function featureMask(features: ReadonlySet<LeFeatureBit>): bigint {
  let mask = 0n;
  for (const bit of features) mask |= 1n << BigInt(bit);
  return mask;
}

/** The commands a controller with these features implements. */
export function supportedCommands(features: ReadonlySet<LeFeatureBit>): CommandCapability[] {
  return COMMANDS.filter((c) => c.requires === undefined || features.has(c.requires));
}

/** The 64-octet Supported_Commands return parameter. */
export function supportedCommandsBitmap(features: ReadonlySet<LeFeatureBit>): Buffer {
  const bitmap = Buffer.alloc(64);
  for (const c of supportedCommands(features)) bitmap[c.octet] = bitmap[c.octet]! | (1 << c.bit);
  return bitmap;
}

/** Vendor-specific commands (OGF 0x3F) have no Supported Commands bit. */
export function isVendorCommand(op: number): boolean {
  return op >> 10 === 0x3f;
}
