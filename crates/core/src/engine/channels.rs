//! Which recipient and which steps a start takes: an address for e-mail, a number (with its kind)
//! for the rest, and the workflow the request, its channel or its service asks for, kept to the
//! steps that can reach the recipient (a landline keeps only its calls).
use super::{StartRequest, Verifier};
use crate::error::{Field, VerifyError};
use crate::model::phone::{NumberKind, PhoneError, PhonePolicy};
use crate::model::recipient::{EmailAddress, Recipient};
use crate::model::service::Service;
use crate::model::workflow::{Channel, Workflow};

impl Verifier {
    /// The request's recipient: an e-mail address when its channel or workflow is e-mail (or
    /// `to` holds an `@` and no channel says otherwise), else a number and its kind.
    pub(super) fn recipient(&self, req: &StartRequest) -> Result<(Recipient, Option<NumberKind>), VerifyError> {
        let by_email = match (&req.options.workflow, req.channel) {
            (Some(w), _) => w.first().channel == Channel::Email,
            (None, Some(c)) => c == Channel::Email || (c == Channel::Auto && req.to.contains('@')),
            (None, None) => req.to.contains('@'),
        };
        if by_email {
            return Ok((Recipient::Email(EmailAddress::parse(&req.to)?), None));
        }
        let policy = match &req.options.region {
            Some(region) => {
                let region = crate::model::phone::parse_region(region)
                    .ok_or_else(|| VerifyError::invalid(Field::Country, "must be an ISO 3166-1 region code"))?;
                std::borrow::Cow::Owned(PhonePolicy { default_region: Some(region), ..(*self.ctx.phones).clone() })
            }
            None => std::borrow::Cow::Borrowed(self.ctx.phones.as_ref()),
        };
        match policy.classify(&req.to) {
            Ok((n, kind)) => Ok((n.into(), Some(kind))),
            // A configured test number is taken as it is (nothing is ever sent to it).
            Err(e) => match policy.normalize(&req.to).filter(|n| self.ctx.test_numbers.is_test(n)) {
                Some(n) => Ok((n.into(), Some(NumberKind::Mobile))),
                None => Err(e.into()),
            },
        }
    }

    /// The steps of a new verification: the request's workflow, else its channel's one step,
    /// else (for `auto`, `silent` or no channel) the service's workflow; only the steps that
    /// reach the recipient, refused when none does.
    pub(super) fn workflow_for(
        &self,
        channel: Option<Channel>,
        asked: Option<&Workflow>,
        service: &Service,
        to: &Recipient,
        kind: Option<NumberKind>,
    ) -> Result<Workflow, VerifyError> {
        let fitted = self.fitted(channel, asked, service, to, kind)?;
        // A channel named besides a workflow must be one of the steps that reach the recipient.
        if let (Some(_), Some(c)) = (asked, channel.filter(|c| c.carries_code()))
            && !fitted.uses(c)
        {
            return Err(VerifyError::invalid(Field::Channel, "must be one of the workflow's channels that reach the recipient"));
        }
        Ok(fitted)
    }

    fn fitted(
        &self,
        channel: Option<Channel>,
        asked: Option<&Workflow>,
        service: &Service,
        to: &Recipient,
        kind: Option<NumberKind>,
    ) -> Result<Workflow, VerifyError> {
        let wanted = match (asked, channel) {
            (Some(w), _) => w.clone(),
            (None, Some(c)) if c.carries_code() => Workflow::single(c),
            _ => service.channels.workflow.clone(),
        };
        match (to, kind) {
            (Recipient::Email(_), _) => match channel {
                Some(Channel::Silent) => Err(VerifyError::invalid(Field::Channel, "an e-mail address is verified by the email channel")),
                _ => Ok(wanted.fitting(|c| c == Channel::Email).unwrap_or_else(|| Workflow::single(Channel::Email))),
            },
            (Recipient::Phone(_), kind) => {
                let kind = kind.unwrap_or(NumberKind::Mobile);
                if asked.is_none() && channel == Some(Channel::Email) {
                    return Err(VerifyError::invalid(Field::To, "must be an e-mail address like name@example.com"));
                }
                let fits = |c| self.ctx.phones.accepts(c, kind);
                // `auto` picks a channel that fits when none of the service's does (a landline
                // gets a call even where the service only texts).
                let any = || [Channel::Sms, Channel::Whatsapp, Channel::Voice].into_iter().find(|c| fits(*c)).map(Workflow::single);
                let auto = channel == Some(Channel::Auto) && asked.is_none();
                wanted.fitting(fits).or_else(|| any().filter(|_| auto)).ok_or_else(|| PhoneError::KindNotAllowed(kind).into())
            }
        }
    }
}
