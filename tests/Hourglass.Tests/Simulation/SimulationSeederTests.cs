using Hourglass.Policies;
using Hourglass.Simulation;

namespace Hourglass.Tests.Simulation;

/// <summary>The seeder's policy document for each simulated tenant: valid, with the world's caps and approvals.</summary>
public sealed class SimulationSeederTests
{
    [Fact]
    public void PolicyJson_EveryTenant_ValidDocumentWithTheWorldsCapsAndApprovals()
    {
        var options = new SimulationOptions { Tenants = 3, ContactsPerTenant = 10, EmailDailyCap = 120, ContactWeeklyCap = 1 };
        var world = SimWorld.Generate(options);

        foreach (var tenant in world.Tenants)
        {
            var document = PolicyDocument.Parse(SimulationSeeder.PolicyJson(options, tenant));
            Assert.Contains(document.Rules, r => r.Id == "email-daily-cap");
            Assert.Contains(document.Rules, r => r.Kind == "holidays");
            Assert.Equal(tenant.ApprovesMessages, document.Rules.Any(r => r.Id == "approve-every-message" && r.Decision == PolicyVerdict.RequireApproval));
        }
    }
}
