import { assertEquals } from "@std/assert";
import { SendBudget } from "../server/send_budget.ts";

Deno.test("send budget: whole-byte shares between one frame and the maximum", () => {
  const budget = new SendBudget(1_000_000, { min: 1000, max: 400_000 });
  const leave = [budget.join()];
  assertEquals(budget.perSocket, 400_000);
  leave.push(budget.join(), budget.join());
  // 1,000,000 / 3 is fractional: frames are sized from it, so it is floored.
  assertEquals(budget.perSocket, 333_333);
  for (let i = 0; i < 2000; i++) leave.push(budget.join());
  assertEquals(budget.perSocket, 1000);
  for (const out of leave) out();
  leave[0](); // leaving twice counts once
  assertEquals(budget.perSocket, 400_000);
});
