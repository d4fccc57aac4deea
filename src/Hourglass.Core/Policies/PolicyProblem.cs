namespace Hourglass.Policies;

/// <summary>One problem in a policy document: the field (e.g. <c>rules[2].limit</c>) and what is wrong with it.</summary>
internal sealed record PolicyProblem(string Field, string Problem)
{
    public override string ToString() => $"{Field}: {Problem}";
}

/// <summary>A policy document was refused; nothing was saved and the version in force stays in force.</summary>
internal sealed class PolicyValidationException(IReadOnlyList<PolicyProblem> problems)
    : HourglassException($"policy document refused: {string.Join("; ", problems)}")
{
    public IReadOnlyList<PolicyProblem> Problems { get; } = problems;
}
