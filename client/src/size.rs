//! The frame limit, checked before a request is sent: a request that cannot fit one frame is
//! refused with `ClientError::TooLarge` (saying the limit and what to do) instead of breaking
//! the connection when the writer fails to frame it.

use crate::batcher::weight;
use crate::error::ClientError;
use tatzelwurm_proto::actioner::Command;
use tatzelwurm_proto::codec::encode;
use tatzelwurm_proto::{RequestId, MAX_FRAME_LEN};

/// Refuses a command whose frame would exceed `MAX_FRAME_LEN`. Cheap for ordinary requests:
/// only one whose text comes near the limit is encoded to measure it exactly.
pub(crate) fn check_size(command: &Command) -> Result<(), ClientError> {
    let estimate: usize = match command {
        Command::Add { tasks, .. } => tasks.iter().map(weight).sum(),
        Command::Watch(ids) => ids.len() * 10,
        _ => 0,
    };
    if estimate <= MAX_FRAME_LEN / 2 {
        return Ok(());
    }
    // A request is framed as `FromActioner { request, command }`, which bincode writes as the
    // pair; the largest request id gives the largest frame.
    let bytes = if estimate > 2 * MAX_FRAME_LEN {
        estimate
    } else {
        encode(&(RequestId(u64::MAX), command)).map_or(estimate, |body| body.len())
    };
    if bytes > MAX_FRAME_LEN {
        return Err(ClientError::TooLarge { bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::TaskSpec;

    fn add(args: String) -> Command {
        Command::Add {
            tasks: vec![TaskSpec {
                function: "m:f".into(),
                args,
                kwargs: "{}".into(),
                ..TaskSpec::default()
            }],
            play: true,
            key: None,
            watch: false,
        }
    }

    /// Small and near-limit requests pass; one argument of 70 MB or one just over the limit is
    /// refused with its size.
    #[test]
    fn refuses_only_what_cannot_fit() {
        assert!(check_size(&add("[1]".into())).is_ok());
        assert!(check_size(&add(format!("[\"{}\"]", "x".repeat(MAX_FRAME_LEN - 100)))).is_ok());
        let over = check_size(&add(format!("[\"{}\"]", "x".repeat(MAX_FRAME_LEN))));
        assert!(
            matches!(over, Err(ClientError::TooLarge { bytes }) if bytes > MAX_FRAME_LEN),
            "{over:?}"
        );
        let huge = check_size(&add(format!("[\"{}\"]", "x".repeat(70_000_000))));
        assert!(
            matches!(huge, Err(ClientError::TooLarge { .. })),
            "{huge:?}"
        );
    }
}
