using Hourglass.Simulation;
using Npgsql;

namespace Hourglass.Tests.Simulation;

/// <summary>Which database errors a simulated person takes as an answer (the card is no longer open), and which end the run.</summary>
public sealed class SimRefusalsTests
{
    [Theory]
    [InlineData("decide_approval: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 is expired, not open (it expired at 2026-01-20 14:00:00+00)", "decide_approval: expired")]
    [InlineData("complete_touch_card: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 is done, not open", "complete_touch_card: done")]
    [InlineData("dismiss_card: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 is dismissed, not open", "dismiss_card: dismissed")]
    public void Reason_CardNoLongerOpen_IsARefusal(string message, string reason) =>
        Assert.Equal(reason, SimRefusals.Reason(new PostgresException(message, "ERROR", "ERROR", "55000")));

    [Theory]
    [InlineData("decide_approval: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 not found", "P0002")]
    [InlineData("decide_approval: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 is a touch_task card, not an approval", "22023")]
    [InlineData("remove_tenant_member: this is the tenant's last owner; make someone else owner first", "55000")]
    [InlineData("decide_approval: card 0b6c2f9e-6b1d-4c55-9d1c-3f4b7f0e2a11 is expired, not open", "40001")]
    public void Reason_AnythingElse_IsAFault(string message, string sqlState) =>
        Assert.Null(SimRefusals.Reason(new PostgresException(message, "ERROR", "ERROR", sqlState)));
}
