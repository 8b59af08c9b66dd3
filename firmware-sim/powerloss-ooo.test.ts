// The linear power-loss schedule in CI, out-of-order power loss: unsynced programs land in any
// subset, the interrupted one is torn (firmware-sim/powerloss.ts).
import { powerLossCase } from './powerloss-case';

powerLossCase('outOfOrder', 'ci-ooo');
