// The linear power-loss schedule in CI, atomic power loss (firmware-sim/powerloss.ts).
import { powerLossCase } from './powerloss-case';

powerLossCase('atomic', 'ci-atomic');
